/**
 * The poll loop: one timer for every job this tab leads.
 *
 * Each tick polls the due jobs — together through the batch endpoint when enough are due, otherwise one by
 * one with If-None-Match — under the circuit breaker and the Retry-After hold of their request class. What
 * a poll learns goes to the registry (which shares and persists it); the answer, or the failure, sets
 * the job's next due time. Pausing, resuming, refreshing, and the reactions to visibility and network
 * changes all come down to moving due times and re-arming the timer.
 */

import {isServerFailure} from './breaker.js';
import {clampDelayMs, setSafeTimeout} from './delay.js';
import {HTTPError, isRetryableError} from './errors.js';
import {jobPath} from './http.js';
import {percentile, RingBuffer} from './poll-log.js';
import {baseIntervalMs, isTerminalStatus, retryDelayMs, steadyDelayMs} from './schedule.js';
import {statusFromJob} from './watch.js';

/** @typedef {import('./index.js').Job} Job */
/** @typedef {import('./index.js').JobStatus} JobStatus */
/** @typedef {import('./options.js').ResolvedOptions} ResolvedOptions */
/** @typedef {import('./poll-log.js').PollLogEntry} PollLogEntry */
/** @typedef {import('./breaker.js').CircuitBreaker} CircuitBreaker */
/** @typedef {import('./breaker.js').Permit} Permit */
/** @typedef {import('./http.js').Transport} Transport */
/** @typedef {import('./holds.js').RequestHolds} RequestHolds */
/** @typedef {import('./holds.js').RequestClass} RequestClass */
/** @typedef {import('./watch-registry.js').WatchRegistry} WatchRegistry */
/** @typedef {import('./leadership.js').Leadership} Leadership */
/** @typedef {import('./persistence.js').Persistence} Persistence */
/** @typedef {import('./visibility.js').VisibilityManager} VisibilityManager */
/** @typedef {import('./online.js').OnlineManager} OnlineManager */
/** @typedef {import('./watch.js').Watch} Watch */

/**
 * The server's budget each kind of poll draws on: status and batch polls are polls, the final full-job
 * fetch (GET /api/ai/jobs/{id}) counts as any other call.
 * @type {Record<PollLogEntry['kind'], RequestClass>}
 */
const CLASS_OF_KIND = {status: 'poll', batch: 'poll', job: 'default'};

/**
 * @param {unknown} error
 * @returns {number | null}
 */
function retryAfterOf(error) {
	return error instanceof HTTPError ? error.retryAfterMs : null;
}

/**
 * @template T
 * @param {T[]} items
 * @param {number} size
 * @returns {T[][]}
 */
function chunk(items, size) {
	/** @type {T[][]} */
	const chunks = [];
	for (let index = 0; index < items.length; index += size) {
		chunks.push(items.slice(index, index + size));
	}

	return chunks;
}

/**
 * @param {Watch} w
 * @returns {PollLogEntry['kind']}
 */
function kindOf(w) {
	return w.phase === 'result' ? 'job' : 'status';
}

export class Scheduler {
	#options;
	#transport;
	#breaker;
	#holds;
	#registry;
	#leadership;
	#persistence;
	#visibility;
	#online;
	#onAnswer;
	/** @type {RingBuffer<PollLogEntry>} */
	#log;
	/** 95th percentile of the logged polls' durations, failures included: what a poll usually takes. */
	#typicalPollMs = 0;
	/** @type {ReturnType<typeof setTimeout> | undefined} */
	#timer;
	#closed = false;
	/** @type {Set<AbortController>} */
	#pollControllers = new Set();
	/** @type {Array<() => void>} */
	#unsubscribe;

	/**
	 * @param {object} options
	 * @param {ResolvedOptions} options.options
	 * @param {Transport} options.transport
	 * @param {CircuitBreaker} options.breaker
	 * @param {RequestHolds} options.holds
	 * @param {WatchRegistry} options.registry
	 * @param {Leadership} options.leadership
	 * @param {Persistence} options.persistence
	 * @param {VisibilityManager} options.visibility
	 * @param {OnlineManager} options.online
	 * @param {() => void} options.onAnswer a request got a healthy answer
	 */
	constructor({options, transport, breaker, holds, registry, leadership, persistence, visibility, online, onAnswer}) {
		this.#options = options;
		this.#transport = transport;
		this.#breaker = breaker;
		this.#holds = holds;
		this.#registry = registry;
		this.#leadership = leadership;
		this.#persistence = persistence;
		this.#visibility = visibility;
		this.#online = online;
		this.#onAnswer = onAnswer;
		this.#log = new RingBuffer(options.pollLogSize);
		this.#unsubscribe = [
			visibility.subscribe((hidden) => this.#onVisibilityChange(hidden)),
			online.subscribe((isOnline) => (isOnline ? this.#onOnline() : this.#onOffline())),
		];
	}

	/** @returns {PollLogEntry[]} oldest first */
	pollLog() {
		return this.#log.toArray();
	}

	// ---- leadership ------------------------------------------------------------------------------

	/**
	 * This tab now leads the job: poll it when a persisted due time says so, else at once.
	 * @param {Watch} w
	 */
	lead(w) {
		w.nextPollAt ??= w.resumeAt ?? Date.now();
		w.resumeAt = null;
		this.#registry.persist(w);
		this.arm();
	}

	/**
	 * Another tab leads the job: this one polls it only on demand.
	 * @param {Watch} w
	 */
	follow(w) {
		w.nextPollAt = null;
		this.#registry.persist(w);
		this.arm();
	}

	/**
	 * How long a leader of this job expects to go without a beat, from now. It beats when a poll starts and
	 * when it ends, so: while a poll is in flight, the time its requests take (the server's hold in long-poll
	 * mode, else the 95th percentile of this tab's recent polls, failures included); otherwise the time
	 * until its next poll, the breaker and Retry-After holds included. For a job this tab does not poll,
	 * the interval a leader would keep.
	 * @param {Watch} w
	 * @returns {number}
	 */
	quietMsOf(w) {
		const options = this.#options;
		if (w.inFlight) {
			if (options.longPoll && !this.#visibility.hidden && w.phase === 'status') {
				return options.waitSeconds * 1000;
			}

			return this.#typicalPollMs;
		}

		if (w.nextPollAt === null) {
			return baseIntervalMs(w.status?.status, w.hintMs, options);
		}

		return clampDelayMs(Math.max(w.nextPollAt, this.#gateAt(w)) - Date.now());
	}

	// ---- control ---------------------------------------------------------------------------------

	/**
	 * Poll now instead of waiting; paused and finished watches are left alone.
	 * @param {string} [id]
	 */
	refresh(id) {
		const now = Date.now();
		for (const w of this.#registry.targets(id)) {
			if (!w.paused && !w.inFlight && (w.state === 'active' || w.state === 'backing-off')) {
				w.nextPollAt = now;
			}
		}

		this.arm();
	}

	/**
	 * Stop polling one job, or all of them. A paused job's tab gives up its leadership so another tab can
	 * poll it.
	 * @param {string} [id]
	 */
	pause(id) {
		const registry = this.#registry;
		if (id === undefined) {
			if (registry.pausedAll) {
				return;
			}

			registry.pausedAll = true;
			this.#abortPolls();
			for (const w of registry.values()) {
				this.#leadership.resign(w);
				registry.syncState(w);
			}
		} else {
			const w = registry.get(id);
			if (!w || w.paused) {
				return;
			}

			w.paused = true;
			this.#leadership.resign(w);
			w.controller?.abort();
			registry.syncState(w);
			registry.persist(w);
		}

		this.arm();
	}

	/**
	 * Undo pause(); resumed jobs are polled at once by whichever tab the election picks.
	 * @param {string} [id]
	 */
	resume(id) {
		const registry = this.#registry;
		if (id === undefined) {
			if (!registry.pausedAll) {
				return;
			}

			registry.pausedAll = false;
			for (const w of registry.values()) {
				if (!w.paused) {
					w.nextPollAt = null;
					w.resumeAt = null;
					this.#leadership.elect(w);
				}

				registry.syncState(w);
			}
		} else {
			const w = registry.get(id);
			if (!w || !w.paused) {
				return;
			}

			w.paused = false;
			w.nextPollAt = null;
			w.resumeAt = null;
			if (!registry.pausedAll) {
				this.#leadership.elect(w);
			}

			registry.syncState(w);
			registry.persist(w);
		}

		this.arm();
	}

	/**
	 * A one-shot status call found the job terminal: fetch the result now rather than at the next poll.
	 * @param {Watch} w
	 */
	fetchResultSoon(w) {
		if (w.phase === 'result' && w.role === 'leader' && !w.inFlight) {
			w.nextPollAt = Date.now();
			this.arm();
		}
	}

	/**
	 * When this tab will next poll the job, as far as it knows now (the breaker and holds included).
	 * @param {Watch} w
	 * @returns {number | null}
	 */
	plannedPollAt(w) {
		if (w.nextPollAt === null || this.#registry.effectiveState(w) === 'paused') {
			return null;
		}

		const gateAt = this.#gateAt(w);
		return Math.max(w.nextPollAt, Number.isFinite(gateAt) ? gateAt : 0);
	}

	close() {
		this.#closed = true;
		this.#clearTimer();
		this.#abortPolls();
		for (const unsubscribe of this.#unsubscribe) {
			unsubscribe();
		}
	}

	// ---- the loop --------------------------------------------------------------------------------

	/** Arm the single timer for the earliest due poll, respecting the breaker and the holds. */
	arm() {
		this.#clearTimer();
		if (this.#stopped()) {
			return;
		}

		let at = Number.POSITIVE_INFINITY;
		for (const w of this.#registry.values()) {
			if (this.#isPollable(w)) {
				at = Math.min(at, Math.max(/** @type {number} */ (w.nextPollAt), this.#gateAt(w)));
			}
		}

		if (at === Number.POSITIVE_INFINITY) {
			// Nothing due, or a half-open probe is in flight: its completion re-arms.
			return;
		}

		this.#timer = setSafeTimeout(() => {
			this.#timer = undefined;
			this.#tick();
		}, at - Date.now());
	}

	#tick() {
		if (this.#stopped()) {
			return;
		}

		const now = Date.now();
		const {batch} = this.#options;
		/** @type {Watch[]} */
		const due = [];
		/** @type {Watch[]} */
		const soon = [];
		for (const w of this.#registry.values()) {
			if (!this.#isPollable(w) || this.#holds.until(CLASS_OF_KIND[kindOf(w)]) > now) {
				continue;
			}

			const nextPollAt = /** @type {number} */ (w.nextPollAt);
			if (nextPollAt <= now) {
				due.push(w);
			} else if (batch && w.state === 'active' && w.phase === 'status' && !w.forceSingle && nextPollAt <= now + batch.windowMs) {
				soon.push(w);
			}
		}

		/** @type {Array<{kind: PollLogEntry['kind'], watches: Watch[]}>} */
		const requests = [];
		let batchable = due.filter((w) => w.phase === 'status' && !w.forceSingle);
		const singles = due.filter((w) => !batchable.includes(w));
		if (batch && batchable.length > 0 && batchable.length + soon.length >= batch.minJobs) {
			// Pull jobs due within the window forward: once polled together they stay aligned.
			batchable = [...batchable, ...soon];
			for (const watches of chunk(batchable, batch.maxJobs)) {
				requests.push({kind: 'batch', watches});
			}
		} else {
			singles.push(...batchable);
		}

		for (const w of singles) {
			requests.push({kind: kindOf(w), watches: [w]});
		}

		for (const {kind, watches} of requests) {
			const permit = this.#breaker.tryAcquire();
			if (!permit) {
				break;
			}

			void this.#poll(kind, watches, permit);
		}

		this.arm();
	}

	/**
	 * Run one poll request and apply its outcome to every watch it covered.
	 * @param {PollLogEntry['kind']} kind
	 * @param {Watch[]} watches
	 * @param {Permit} permit
	 */
	async #poll(kind, watches, permit) {
		const controller = new AbortController();
		this.#pollControllers.add(controller);
		for (const w of watches) {
			w.inFlight = true;
			if (watches.length === 1) {
				w.controller = controller;
			}
		}

		this.#leadership.beat(watches);
		const longPoll = this.#options.longPoll && !this.#visibility.hidden;
		const startedAt = Date.now();
		/** @type {PollLogEntry} */
		const entry = {at: startedAt, kind, ids: watches.map((w) => w.id), outcome: 'not-modified', httpStatus: null, latencyMs: 0, error: null};
		try {
			if (kind === 'batch') {
				await this.#pollBatch(watches, controller.signal, longPoll, entry);
			} else if (kind === 'job') {
				await this.#pollJob(watches[0], controller.signal, entry);
			} else {
				await this.#pollStatus(watches[0], controller.signal, longPoll, entry);
			}

			permit.success();
			this.#onAnswer();
			entry.latencyMs = Date.now() - startedAt;
			this.#record(entry);
		} catch (error) {
			if (controller.signal.aborted) {
				// Paused, closed or unwatched: says nothing about the server.
				permit.release();
				return;
			}

			if (isServerFailure(error)) {
				permit.failure();
			} else {
				permit.success();
			}

			this.#holds.learn(error, CLASS_OF_KIND[kind]);
			this.#record({
				...entry,
				outcome: 'error',
				httpStatus: error instanceof HTTPError ? error.status : null,
				latencyMs: Date.now() - startedAt,
				error: error instanceof Error ? error.name : 'Error',
			});
			for (const w of watches) {
				if (this.#registry.isCurrent(w)) {
					this.#onPollFailure(w, error);
				}
			}
		} finally {
			this.#pollControllers.delete(controller);
			for (const w of watches) {
				w.inFlight = false;
				if (w.controller === controller) {
					w.controller = null;
				}
			}

			this.#leadership.beat(watches.filter((w) => this.#registry.isCurrent(w)));

			this.#persistence.breakerChanged();
			this.arm();
		}
	}

	/**
	 * GET the status of one job, conditionally on its ETag (and held by the server in long-poll mode).
	 * @param {Watch} w
	 * @param {AbortSignal} signal
	 * @param {boolean} longPoll
	 * @param {PollLogEntry} entry
	 */
	async #pollStatus(w, signal, longPoll, entry) {
		const startedAt = entry.at;
		/** @type {Record<string, string>} */
		const headers = {};
		const conditional = w.etag !== null && w.etagVersion === w.version;
		if (conditional) {
			headers['if-none-match'] = /** @type {string} */ (w.etag);
		}

		const waitSeconds = longPoll && conditional ? this.#options.waitSeconds : undefined;
		const answer = await this.#transport.request({
			method: 'GET',
			path: `${jobPath(w.id)}/status`,
			query: {wait: waitSeconds},
			headers,
			signal,
			timeoutMs: this.#timeoutFor(waitSeconds),
		});
		entry.httpStatus = answer.status;
		if (!this.#registry.isCurrent(w)) {
			return;
		}

		w.forceSingle = false;
		if (answer.status === 304) {
			w.hintMs ??= answer.retryAfterMs;
		} else {
			entry.outcome = 'updated';
			this.#registry.applyStatus(w, answer.body, {etag: answer.etag, share: true});
			if (answer.body.poll_after_ms === null || answer.body.poll_after_ms === undefined) {
				w.hintMs = isTerminalStatus(answer.body.status) ? null : answer.retryAfterMs;
			}
		}

		this.#scheduleAfterSuccess([w], Date.now() - startedAt, longPoll);
	}

	/**
	 * POST the known versions of several jobs; only changed ones come back in full.
	 * @param {Watch[]} watches
	 * @param {AbortSignal} signal
	 * @param {boolean} longPoll
	 * @param {PollLogEntry} entry
	 */
	async #pollBatch(watches, signal, longPoll, entry) {
		/** @type {Record<string, number>} */
		const versions = {};
		for (const w of watches) {
			if (w.version !== null) {
				versions[w.id] = w.version;
			}
		}

		const allKnown = Object.keys(versions).length === watches.length;
		const waitSeconds = longPoll && allKnown ? this.#options.waitSeconds : undefined;
		const answer = await this.#transport.request({
			method: 'POST',
			path: '/api/ai/jobs/statuses',
			query: {wait: waitSeconds},
			body: {ids: watches.map((w) => w.id), versions},
			signal,
			timeoutMs: this.#timeoutFor(waitSeconds),
		});
		entry.httpStatus = answer.status;
		const byId = new Map(watches.map((w) => [w.id, w]));
		/** @type {JobStatus[]} */
		const changed = Array.isArray(answer.body.jobs) ? answer.body.jobs : [];
		/** @type {string[]} */
		const notFound = Array.isArray(answer.body.not_found) ? answer.body.not_found : [];
		const batchHintMs = typeof answer.body.poll_after_ms === 'number' ? answer.body.poll_after_ms : null;
		for (const status of changed) {
			const w = byId.get(status.id);
			if (w && this.#registry.isCurrent(w)) {
				entry.outcome = 'updated';
				this.#registry.applyStatus(w, status, {etag: null, share: true});
			}
		}

		const now = Date.now();
		/** @type {Watch[]} */
		const steady = [];
		for (const w of watches) {
			if (!this.#registry.isCurrent(w)) {
				continue;
			}

			if (notFound.includes(w.id)) {
				// Let a single request surface the server's own 404 problem.
				w.forceSingle = true;
				w.attempt = 0;
				w.nextPollAt = now;
				continue;
			}

			w.hintMs ??= batchHintMs;
			steady.push(w);
		}

		this.#scheduleAfterSuccess(steady, now - entry.at, longPoll);
	}

	/**
	 * GET the full job once its status is terminal, for the result.
	 * @param {Watch} w
	 * @param {AbortSignal} signal
	 * @param {PollLogEntry} entry
	 */
	async #pollJob(w, signal, entry) {
		const answer = await this.#transport.request({method: 'GET', path: jobPath(w.id), signal});
		entry.httpStatus = answer.status;
		entry.outcome = 'updated';
		if (!this.#registry.isCurrent(w)) {
			return;
		}

		/** @type {Job} */
		const job = answer.body;
		if (isTerminalStatus(job.status)) {
			this.#registry.finish(w, job, {share: true});
			return;
		}

		w.phase = 'status';
		this.#registry.applyStatus(w, statusFromJob(job), {etag: null, share: true});
		this.#scheduleAfterSuccess([w], Date.now() - entry.at, false);
	}

	/**
	 * Next due time after a healthy answer. Jobs answered together share one jittered delay (the shortest
	 * interval among them), so a batch stays a batch.
	 * @param {Watch[]} watches
	 * @param {number} elapsedMs
	 * @param {boolean} longPoll
	 */
	#scheduleAfterSuccess(watches, elapsedMs, longPoll) {
		if (watches.length === 0) {
			return;
		}

		const options = this.#options;
		const intervalMs = Math.min(...watches.map((w) => baseIntervalMs(w.status?.status, w.hintMs, options)));
		const now = Date.now();
		const nextAt = now + steadyDelayMs({intervalMs, hidden: this.#visibility.hidden, longPoll, elapsedMs}, options, options.random);
		for (const w of watches) {
			w.attempt = 0;
			w.state = 'active';
			if (w.role !== 'leader') {
				// Followers only poll once on demand; the leader (or its 'done' message) carries on.
				w.nextPollAt = null;
			} else {
				w.nextPollAt = w.phase === 'result' ? now : nextAt;
			}

			this.#registry.syncState(w);
			this.#registry.persist(w);
		}
	}

	/**
	 * @param {Watch} w
	 * @param {unknown} error
	 */
	#onPollFailure(w, error) {
		if (!isRetryableError(error)) {
			this.#registry.fail(w, error);
			return;
		}

		if (w.role !== 'leader') {
			// A follower's one-off poll: the leader keeps polling, nothing to retry here.
			w.nextPollAt = null;
			this.#registry.reportError(w, error);
			return;
		}

		w.attempt += 1;
		if (w.attempt >= this.#options.retry.maxAttempts) {
			this.#registry.fail(w, error);
			return;
		}

		this.#registry.reportError(w, error);
		w.state = 'backing-off';
		w.nextPollAt = Date.now() + retryDelayMs(w.attempt, retryAfterOf(error), this.#options.retry, this.#options.random);
		this.#registry.syncState(w);
		this.#registry.persist(w);
	}

	// ---- environment -----------------------------------------------------------------------------

	/** @param {boolean} hidden */
	#onVisibilityChange(hidden) {
		if (!hidden) {
			// Back in view: one immediate catch-up poll of every job this tab leads.
			const now = Date.now();
			for (const w of this.#registry.values()) {
				if (w.role === 'leader' && !w.paused && w.state === 'active') {
					w.nextPollAt = now;
				}
			}
		}

		this.arm();
	}

	#onOffline() {
		this.#abortPolls();
		for (const w of this.#registry.values()) {
			this.#registry.syncState(w);
		}

		this.arm();
	}

	#onOnline() {
		// Whatever we believed, the network may be back: probe now instead of waiting out backoff.
		this.#breaker.probeNow();
		const now = Date.now();
		for (const w of this.#registry.values()) {
			if (w.role === 'leader' && !w.paused && !w.inFlight && (w.state === 'active' || w.state === 'backing-off')) {
				w.attempt = 0;
				w.state = 'active';
				w.nextPollAt = now;
				this.#registry.persist(w);
			}

			this.#registry.syncState(w);
		}

		this.arm();
	}

	// ---- helpers ---------------------------------------------------------------------------------

	/** @param {PollLogEntry} entry */
	#record(entry) {
		this.#log.push(entry);
		this.#typicalPollMs = percentile(this.#log.toArray().map((logged) => logged.latencyMs), 95) ?? 0;
	}

	/** @returns {boolean} whether nothing may be polled at all now */
	#stopped() {
		return this.#closed || this.#registry.pausedAll || this.#online.offline;
	}

	/**
	 * Earliest time the breaker and the hold of this job's next request class let it go.
	 * @param {Watch} w
	 * @returns {number}
	 */
	#gateAt(w) {
		return Math.max(this.#breaker.availableAt(), this.#holds.until(CLASS_OF_KIND[kindOf(w)]));
	}

	/** @param {Watch} w */
	#isPollable(w) {
		return w.nextPollAt !== null && !w.paused && !w.inFlight && (w.state === 'active' || w.state === 'backing-off');
	}

	/**
	 * @param {number | undefined} waitSeconds
	 * @returns {number | undefined}
	 */
	#timeoutFor(waitSeconds) {
		return waitSeconds === undefined ? undefined : this.#options.requestTimeoutMs + (waitSeconds * 1000);
	}

	#abortPolls() {
		for (const controller of this.#pollControllers) {
			controller.abort();
		}
	}

	#clearTimer() {
		if (this.#timer !== undefined) {
			clearTimeout(this.#timer);
			this.#timer = undefined;
		}
	}
}

