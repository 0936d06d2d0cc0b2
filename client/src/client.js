/**
 * The jobs client: one-shot API calls with retries, and a scheduler that watches jobs until they finish.
 *
 * One timer drives every watch. Each tick polls the due jobs — together through the batch endpoint when
 * enough are due, otherwise one by one with If-None-Match — under the circuit breaker and any Retry-After
 * hold. What a poll learns is applied, shared with other tabs, persisted, and turned into the next due time.
 */

import {isServerFailure, CircuitBreaker} from './breaker.js';
import {Coordinator} from './coordination.js';
import {abortReason, AbsoluteTimer, delay, linkSignals, setSafeTimeout} from './delay.js';
import {AbortError, CircuitOpenError, DeadlineError, HTTPError, isRetryableError} from './errors.js';
import {Transport} from './http.js';
import {resolveOptions} from './options.js';
import {RingBuffer, summarize} from './poll-log.js';
import {baseIntervalMs, isTerminalStatus, retryDelayMs, steadyDelayMs} from './schedule.js';
import {StateStore} from './storage.js';
import {createWatch, isStatusLike, progressChanged, statusFromJob, toPersisted} from './watch.js';

/** @typedef {import('./index.js').Job} Job */
/** @typedef {import('./index.js').JobStatus} JobStatus */
/** @typedef {import('./index.js').JobsPage} JobsPage */
/** @typedef {import('./index.js').ListQuery} ListQuery */
/** @typedef {import('./index.js').WatchState} WatchState */
/** @typedef {import('./index.js').WatchOptions} WatchOptions */
/** @typedef {import('./index.js').ResumeOptions} ResumeOptions */
/** @typedef {import('./index.js').CallOptions} CallOptions */
/** @typedef {import('./index.js').SubmitOptions} SubmitOptions */
/** @typedef {import('./index.js').HealthReport} HealthReport */
/** @typedef {import('./index.js').JobsClientOptions} JobsClientOptions */
/** @typedef {import('./options.js').ResolvedOptions} ResolvedOptions */
/** @typedef {import('./poll-log.js').PollLogEntry} PollLogEntry */
/** @typedef {import('./storage.js').PersistedWatch} PersistedWatch */
/** @typedef {import('./breaker.js').Permit} Permit */
/** @typedef {import('./http.js').RequestSpec} RequestSpec */
/** @typedef {import('./http.js').Answer} Answer */
/** @typedef {import('./watch.js').Watch} Watch */
/** @typedef {import('./watch.js').Waiter} Waiter */

/**
 * @param {unknown} id
 * @param {string} method
 * @returns {asserts id is string}
 */
function assertJobId(id, method) {
	if (typeof id !== 'string' || id === '') {
		throw new TypeError(`${method}: job id must be a non-empty string, got ${typeof id}`);
	}
}

/**
 * A random UUID v4 (`crypto.randomUUID` needs a secure context; getRandomValues does not).
 * @returns {string}
 */
function newRequestId() {
	const bytes = crypto.getRandomValues(new Uint8Array(16));
	bytes[6] = (bytes[6] & 0x0f) | 0x40;
	bytes[8] = (bytes[8] & 0x3f) | 0x80;
	const hex = [...bytes].map((byte) => byte.toString(16).padStart(2, '0')).join('');
	return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * @param {unknown} error
 * @returns {number | null}
 */
function retryAfterOf(error) {
	return error instanceof HTTPError ? error.retryAfterMs : null;
}

/**
 * @param {import('./options.js').DocumentLike | null} document
 * @returns {boolean}
 */
function isHidden(document) {
	return document !== null && (document.visibilityState === 'hidden' || document.hidden === true);
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

/** @typedef {import('./index.js').JobsClient} PublicJobsClient */

/** @implements {PublicJobsClient} */
export class JobsClient extends EventTarget {
	/** @type {ResolvedOptions} */
	#options;
	/** @type {Transport} */
	#transport;
	/** @type {CircuitBreaker} */
	#breaker;
	/** @type {StateStore} */
	#store;
	/** @type {Coordinator} */
	#coordinator;
	/** @type {RingBuffer<PollLogEntry>} */
	#log;
	/** @type {Map<string, Watch>} */
	#watches = new Map();
	/** @type {ReturnType<typeof setTimeout> | undefined} */
	#timer;
	#paused = false;
	#offline = false;
	#hidden = false;
	#closed = false;
	/** Client-wide "not before" from a Retry-After on 429/503, epoch ms. */
	#holdUntil = 0;
	/** @type {number | null} */
	#lastSuccessAt = null;
	/** @type {Set<AbortController>} */
	#pollControllers = new Set();
	#closeController = new AbortController();
	/** @type {Array<() => void>} */
	#unlisten = [];
	/** @type {Map<string, PersistedWatch | null>} */
	#dirty = new Map();
	#breakerDirty = false;
	/** @type {string | null} the breaker snapshot last written, to skip identical writes */
	#savedBreaker = null;
	#flushQueued = false;

	/** @param {JobsClientOptions} options */
	constructor(options) {
		super();
		this.#options = resolveOptions(options);
		const resolved = this.#options;
		this.#transport = new Transport(resolved);
		this.#store = new StateStore(resolved.storage, `${resolved.namespace}:state`);
		this.#log = new RingBuffer(resolved.pollLogSize);
		this.#breaker = new CircuitBreaker({
			...resolved.breaker,
			onChange: (state, previous) => {
				this.#breakerDirty = true;
				this.#queueFlush();
				this.#emit('breakerchange', {state, previous});
			},
		});
		const saved = this.#store.load();
		if (saved.breaker) {
			this.#breaker.restore(saved.breaker);
		}

		this.#coordinator = new Coordinator({
			locks: resolved.locks,
			BroadcastChannel: resolved.BroadcastChannel,
			namespace: resolved.namespace,
			onMessage: (message) => this.#onMessage(message),
		});

		const {document, window} = resolved;
		this.#hidden = isHidden(document);
		if (document) {
			document.addEventListener('visibilitychange', this.#onVisibilityChange);
			this.#unlisten.push(() => document.removeEventListener('visibilitychange', this.#onVisibilityChange));
		}

		if (window) {
			window.addEventListener('online', this.#onOnline);
			window.addEventListener('offline', this.#onOffline);
			this.#unlisten.push(() => {
				window.removeEventListener('online', this.#onOnline);
				window.removeEventListener('offline', this.#onOffline);
			});
		}
	}

	// ---- one-shot calls ----------------------------------------------------------------------------

	/**
	 * Create a job. A request id is generated when none is given, so retrying the POST cannot create twice.
	 * @param {string} agent
	 * @param {unknown} input
	 * @param {SubmitOptions} [options]
	 * @returns {Promise<Job>}
	 */
	async submit(agent, input, {requestId, signal} = {}) {
		if (typeof agent !== 'string' || agent === '') {
			throw new TypeError(`submit: agent must be a non-empty string, got ${typeof agent}`);
		}

		if (requestId !== undefined && (typeof requestId !== 'string' || requestId === '')) {
			throw new TypeError('submit: requestId must be a non-empty string when given');
		}

		const answer = await this.#send({
			method: 'POST',
			path: '/api/ai/jobs',
			body: {agent, input, request_id: requestId ?? newRequestId()},
		}, signal);
		return answer.body;
	}

	/**
	 * @param {string} id
	 * @param {CallOptions} [options]
	 * @returns {Promise<Job>}
	 */
	async get(id, {signal} = {}) {
		assertJobId(id, 'get');
		const answer = await this.#send({method: 'GET', path: this.#jobPath(id)}, signal);
		this.#learnJob(id, answer.body);
		return answer.body;
	}

	/**
	 * @param {string} id
	 * @param {CallOptions} [options]
	 * @returns {Promise<JobStatus>}
	 */
	async status(id, {signal} = {}) {
		assertJobId(id, 'status');
		const answer = await this.#send({method: 'GET', path: `${this.#jobPath(id)}/status`}, signal);
		const w = this.#watches.get(id);
		if (w) {
			this.#applyStatus(w, answer.body, {etag: answer.etag, publish: true});
			this.#pullResultForward(w);
		}

		return answer.body;
	}

	/**
	 * Ask the server to cancel a job; resolves with the job as the server answered (202).
	 * @param {string} id
	 * @param {CallOptions} [options]
	 * @returns {Promise<Job>}
	 */
	async cancel(id, {signal} = {}) {
		assertJobId(id, 'cancel');
		const answer = await this.#send({method: 'POST', path: `${this.#jobPath(id)}/cancel`}, signal);
		this.#learnJob(id, answer.body);
		return answer.body;
	}

	/**
	 * One page of jobs; pass `next_cursor` back as `cursor` for the next one.
	 * @param {ListQuery} [query]
	 * @param {CallOptions} [options]
	 * @returns {Promise<JobsPage>}
	 */
	async list({status, agent, requestId, limit, cursor} = {}, {signal} = {}) {
		const answer = await this.#send({
			method: 'GET',
			path: '/api/ai/jobs',
			query: {status, agent, request_id: requestId, limit, cursor},
		}, signal);
		return answer.body;
	}

	// ---- watching ----------------------------------------------------------------------------------

	/**
	 * Poll a job until it is terminal. Resolves with the full Job (its `result` included) whether it
	 * succeeded, failed or was cancelled; rejects when polling itself fails for good, at the deadline
	 * (DeadlineError), on unwatch()/close() (AbortError) or when `signal` aborts.
	 * @param {string} id
	 * @param {WatchOptions} [options]
	 * @returns {Promise<Job>}
	 */
	watch(id, {onUpdate, signal, deadlineMs} = {}) {
		assertJobId(id, 'watch');
		if (onUpdate !== undefined && typeof onUpdate !== 'function') {
			throw new TypeError('watch: onUpdate must be a function when given');
		}

		if (deadlineMs !== undefined && !(typeof deadlineMs === 'number' && deadlineMs > 0)) {
			throw new TypeError('watch: deadlineMs must be a number > 0 (or Infinity) when given');
		}

		if (this.#closed) {
			return Promise.reject(new AbortError('The client is closed'));
		}

		if (signal?.aborted) {
			return Promise.reject(abortReason(signal));
		}

		const w = this.#watches.get(id) ?? this.#startWatch(id, null, deadlineMs ?? this.#options.deadlineMs);
		return this.#addWaiter(w, onUpdate, signal);
	}

	/**
	 * Resume the watches a previous page (or client) persisted, each with its remaining delay, backoff,
	 * version and deadline. Returns each job's promise, as watch() would.
	 * @param {ResumeOptions} [options]
	 * @returns {Map<string, Promise<Job>>}
	 */
	resumeWatches({onUpdate, signal} = {}) {
		/** @type {Map<string, Promise<Job>>} */
		const resumed = new Map();
		if (this.#closed) {
			return resumed;
		}

		for (const [id, record] of Object.entries(this.#store.load().jobs)) {
			if (typeof record !== 'object' || record === null) {
				continue;
			}

			const w = this.#watches.get(id) ?? this.#startWatch(id, record, Number.POSITIVE_INFINITY);
			resumed.set(id, this.#addWaiter(w, onUpdate, signal));
		}

		return resumed;
	}

	/**
	 * Stop watching a job; its watch() promises reject with AbortError. False when it was not watched.
	 * @param {string} id
	 * @returns {boolean}
	 */
	unwatch(id) {
		const w = this.#watches.get(id);
		if (!w) {
			return false;
		}

		this.#detach(w, {forget: true});
		for (const waiter of w.waiters) {
			waiter.reject(new AbortError(`Stopped watching job ${id}`));
		}

		return true;
	}

	/**
	 * Poll now instead of waiting: one job, or every watched job. Paused and finished watches are left alone;
	 * the circuit breaker and a server Retry-After still apply.
	 * @param {string} [id]
	 */
	refresh(id) {
		const now = Date.now();
		for (const w of this.#targets(id)) {
			if (!w.paused && !w.inFlight && (w.state === 'active' || w.state === 'backing-off')) {
				w.nextPollAt = now;
			}
		}

		this.#arm();
	}

	/**
	 * Stop polling one job, or all of them, until resume(). In-flight polls are aborted when pausing all.
	 * A paused job's tab gives up its cross-tab leadership so another tab can poll it.
	 * @param {string} [id]
	 */
	pause(id) {
		if (id === undefined) {
			if (this.#paused) {
				return;
			}

			this.#paused = true;
			this.#abortPolls();
			for (const w of this.#watches.values()) {
				this.#resign(w);
				this.#syncState(w);
			}
		} else {
			const w = this.#watches.get(id);
			if (!w || w.paused) {
				return;
			}

			w.paused = true;
			this.#resign(w);
			w.controller?.abort();
			this.#syncState(w);
			this.#markDirty(w);
		}

		this.#arm();
	}

	/**
	 * Undo pause(); resumed jobs are polled at once.
	 * @param {string} [id]
	 */
	resume(id) {
		if (id === undefined) {
			if (!this.#paused) {
				return;
			}

			this.#paused = false;
			for (const w of this.#watches.values()) {
				if (!w.paused) {
					w.nextPollAt = null;
					w.resumeAt = null;
					this.#elect(w);
				}

				this.#syncState(w);
			}
		} else {
			const w = this.#watches.get(id);
			if (!w || !w.paused) {
				return;
			}

			w.paused = false;
			w.nextPollAt = null;
			w.resumeAt = null;
			if (!this.#paused) {
				this.#elect(w);
			}

			this.#syncState(w);
			this.#markDirty(w);
		}

		this.#arm();
	}

	// ---- observability -----------------------------------------------------------------------------

	/**
	 * Same as EventTarget's; the event types and their `detail` are typed in index.d.ts.
	 * @override
	 * @param {string} type
	 * @param {any} listener
	 * @param {boolean | AddEventListenerOptions} [options]
	 */
	addEventListener(type, listener, options) {
		super.addEventListener(type, listener, options);
	}

	/**
	 * @override
	 * @param {string} type
	 * @param {any} listener
	 * @param {boolean | EventListenerOptions} [options]
	 */
	removeEventListener(type, listener, options) {
		super.removeEventListener(type, listener, options);
	}

	/** @returns {HealthReport} */
	health() {
		const gateAt = this.#gateAt();
		/** @type {HealthReport['jobs']} */
		const jobs = {};
		for (const w of this.#watches.values()) {
			const polling = w.nextPollAt !== null && this.#effectiveState(w) !== 'paused';
			jobs[w.id] = {
				state: this.#effectiveState(w),
				role: w.role,
				nextPollAt: polling ? Math.max(/** @type {number} */ (w.nextPollAt), Number.isFinite(gateAt) ? gateAt : 0) : null,
				attempt: w.attempt,
				version: w.version,
				status: w.status?.status ?? null,
				deadlineAt: w.deadlineAt,
			};
		}

		return {
			...summarize(this.#log.toArray()),
			consecutiveFailures: this.#breaker.consecutiveFailures,
			lastSuccessAt: this.#lastSuccessAt,
			breaker: this.#breaker.state,
			paused: this.#paused,
			offline: this.#offline,
			hidden: this.#hidden,
			jobs,
		};
	}

	/** @returns {PollLogEntry[]} the last `pollLogSize` poll attempts, oldest first */
	pollLog() {
		return this.#log.toArray();
	}

	/**
	 * Stop everything: timers, in-flight requests, listeners, locks, the channel. Pending watch() promises
	 * reject with AbortError; persisted watches stay in storage for resumeWatches() on the next page.
	 */
	close() {
		if (this.#closed) {
			return;
		}

		this.#closed = true;
		this.#clearTimer();
		this.#abortPolls();
		this.#closeController.abort(new AbortError('The client is closed'));
		for (const w of [...this.#watches.values()]) {
			this.#detach(w, {forget: false});
			for (const waiter of w.waiters) {
				waiter.reject(new AbortError('The client is closed'));
			}
		}

		for (const unlisten of this.#unlisten) {
			unlisten();
		}

		this.#unlisten = [];
		this.#coordinator.close();
		this.#flush();
	}

	/** Alias of close(). */
	stop() {
		this.close();
	}

	// ---- watch lifecycle ---------------------------------------------------------------------------

	/**
	 * @param {string} id
	 * @param {PersistedWatch | null} saved
	 * @param {number} deadlineMs
	 * @returns {Watch}
	 */
	#startWatch(id, saved, deadlineMs) {
		const w = createWatch(id, saved, deadlineMs, Date.now());
		this.#watches.set(id, w);
		if (w.deadlineAt !== null) {
			const deadlineAt = w.deadlineAt;
			w.deadlineTimer = new AbsoluteTimer(() => {
				this.#fail(w, new DeadlineError(id, deadlineAt, w.deadlineMs ?? Number.NaN));
			});
			w.deadlineTimer.start(deadlineAt);
		}

		this.#syncState(w);
		this.#markDirty(w);
		if (!w.paused && !this.#paused) {
			this.#elect(w);
		}

		return w;
	}

	/**
	 * @param {Watch} w
	 * @param {((status: JobStatus) => void) | undefined} onUpdate
	 * @param {AbortSignal | undefined} signal
	 * @returns {Promise<Job>}
	 */
	#addWaiter(w, onUpdate, signal) {
		return new Promise((resolve, reject) => {
			/** @type {Waiter} */
			const waiter = {resolve, reject, onUpdate, dispose() {}};
			if (signal) {
				const onAbort = () => {
					w.waiters.delete(waiter);
					reject(abortReason(signal));
					if (w.waiters.size === 0 && this.#watches.get(w.id) === w) {
						this.#detach(w, {forget: true});
					}
				};

				signal.addEventListener('abort', onAbort, {once: true});
				waiter.dispose = () => signal.removeEventListener('abort', onAbort);
			}

			w.waiters.add(waiter);
			if (onUpdate && w.status) {
				const {status} = w;
				queueMicrotask(() => {
					if (w.waiters.has(waiter)) {
						this.#callOnUpdate(w, waiter, status);
					}
				});
			}
		});
	}

	/**
	 * Join the election for a job; the leader polls, followers listen.
	 * @param {Watch} w
	 */
	#elect(w) {
		w.election = this.#coordinator.elect(w.id, {
			onLeader: () => {
				if (!this.#isCurrent(w)) {
					return;
				}

				w.role = 'leader';
				w.nextPollAt ??= w.resumeAt ?? Date.now();
				w.resumeAt = null;
				this.#markDirty(w);
				this.#arm();
			},
			onFollower: () => {
				if (!this.#isCurrent(w)) {
					return;
				}

				w.role = 'follower';
				w.nextPollAt = null;
				// Ask the leader for its latest status and whether it is hidden. Taking over only from a
				// hidden leader keeps two visible tabs from stealing the lock back and forth.
				this.#coordinator.publish({type: 'sync', id: w.id});

				this.#markDirty(w);
				this.#arm();
			},
		});
	}

	/** @param {Watch} w */
	#resign(w) {
		w.election?.stop();
		w.election = null;
		w.role = null;
	}

	/**
	 * Stop tracking a watch: timers, election, its own request. `forget` also drops it from storage.
	 * @param {Watch} w
	 * @param {{forget: boolean}} options
	 */
	#detach(w, {forget}) {
		if (this.#watches.get(w.id) === w) {
			this.#watches.delete(w.id);
		}

		this.#resign(w);
		w.deadlineTimer?.clear();
		w.controller?.abort();
		for (const waiter of w.waiters) {
			waiter.dispose();
		}

		if (forget) {
			this.#dirty.set(w.id, null);
			this.#queueFlush();
		}

		this.#arm();
	}

	/**
	 * The job reached a terminal status and we hold the full job: resolve every waiter.
	 * @param {Watch} w
	 * @param {Job} job
	 * @param {boolean} publish
	 */
	#finish(w, job, publish) {
		if (!this.#isCurrent(w)) {
			return;
		}

		this.#applyStatus(w, statusFromJob(job), {etag: null, publish: false});
		w.state = 'done';
		this.#detach(w, {forget: true});
		this.#syncState(w);
		this.#emit('done', {id: w.id, job});
		if (publish) {
			this.#coordinator.publish({type: 'done', id: w.id, job});
		}

		for (const waiter of w.waiters) {
			waiter.resolve(job);
		}
	}

	/**
	 * Polling this job failed for good (final error, attempts used up, deadline).
	 * @param {Watch} w
	 * @param {unknown} error
	 */
	#fail(w, error) {
		if (!this.#isCurrent(w)) {
			return;
		}

		w.state = 'failed';
		this.#detach(w, {forget: true});
		this.#syncState(w);
		this.#emit('error', {id: w.id, error, final: true});
		for (const waiter of w.waiters) {
			waiter.reject(error);
		}
	}

	// ---- scheduler ---------------------------------------------------------------------------------

	/** Arm the single timer for the earliest due poll, respecting the breaker and any Retry-After hold. */
	#arm() {
		this.#clearTimer();
		if (this.#closed || this.#paused || this.#offline) {
			return;
		}

		let earliest = Number.POSITIVE_INFINITY;
		for (const w of this.#watches.values()) {
			if (this.#isPollable(w)) {
				earliest = Math.min(earliest, /** @type {number} */ (w.nextPollAt));
			}
		}

		const at = Math.max(earliest, this.#gateAt());
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
		if (this.#closed || this.#paused || this.#offline) {
			return;
		}

		const now = Date.now();
		if (this.#holdUntil > now) {
			this.#arm();
			return;
		}

		const {batch} = this.#options;
		/** @type {Watch[]} */
		const due = [];
		/** @type {Watch[]} */
		const soon = [];
		for (const w of this.#watches.values()) {
			if (!this.#isPollable(w)) {
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
			requests.push({kind: w.phase === 'result' ? 'job' : 'status', watches: [w]});
		}

		for (const {kind, watches} of requests) {
			const permit = this.#breaker.tryAcquire();
			if (!permit) {
				break;
			}

			void this.#poll(kind, watches, permit);
		}

		this.#arm();
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

		const longPoll = this.#options.longPoll && !this.#hidden;
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
			this.#lastSuccessAt = Date.now();
			entry.latencyMs = this.#lastSuccessAt - startedAt;
			this.#log.push(entry);
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

			this.#breakerDirty = true;
			this.#holdForRetryAfter(error);
			this.#log.push({
				...entry,
				outcome: 'error',
				httpStatus: error instanceof HTTPError ? error.status : null,
				latencyMs: Date.now() - startedAt,
				error: error instanceof Error ? error.name : 'Error',
			});
			for (const w of watches) {
				if (this.#isCurrent(w)) {
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

			this.#breakerDirty = true;
			this.#queueFlush();
			this.#arm();
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
			path: `${this.#jobPath(w.id)}/status`,
			query: {wait: waitSeconds},
			headers,
			signal,
			timeoutMs: this.#timeoutFor(waitSeconds),
		});
		entry.httpStatus = answer.status;
		if (!this.#isCurrent(w)) {
			return;
		}

		w.forceSingle = false;
		if (answer.status === 304) {
			w.hintMs ??= answer.retryAfterMs;
		} else {
			entry.outcome = 'updated';
			this.#applyStatus(w, answer.body, {etag: answer.etag, publish: true});
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
			if (w && this.#isCurrent(w)) {
				entry.outcome = 'updated';
				this.#applyStatus(w, status, {etag: null, publish: true});
			}
		}

		const now = Date.now();
		/** @type {Watch[]} */
		const steady = [];
		for (const w of watches) {
			if (!this.#isCurrent(w)) {
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
		const answer = await this.#transport.request({method: 'GET', path: this.#jobPath(w.id), signal});
		entry.httpStatus = answer.status;
		entry.outcome = 'updated';
		if (!this.#isCurrent(w)) {
			return;
		}

		/** @type {Job} */
		const job = answer.body;
		if (isTerminalStatus(job.status)) {
			this.#finish(w, job, true);
			return;
		}

		w.phase = 'status';
		this.#applyStatus(w, statusFromJob(job), {etag: null, publish: true});
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
		const nextAt = now + steadyDelayMs({intervalMs, hidden: this.#hidden, longPoll, elapsedMs}, options, options.random);
		for (const w of watches) {
			w.attempt = 0;
			w.state = 'active';
			if (w.role !== 'leader') {
				// Followers only poll once on demand; the leader (or its 'done' message) carries on.
				w.nextPollAt = null;
			} else {
				w.nextPollAt = w.phase === 'result' ? now : nextAt;
			}

			this.#syncState(w);
			this.#markDirty(w);
		}
	}

	/**
	 * @param {Watch} w
	 * @param {unknown} error
	 */
	#onPollFailure(w, error) {
		if (!isRetryableError(error)) {
			this.#fail(w, error);
			return;
		}

		if (w.role !== 'leader') {
			// A follower's one-off poll: the leader keeps polling, nothing to retry here.
			w.nextPollAt = null;
			this.#emit('error', {id: w.id, error, final: false});
			return;
		}

		w.attempt += 1;
		if (w.attempt >= this.#options.retry.maxAttempts) {
			this.#fail(w, error);
			return;
		}

		this.#emit('error', {id: w.id, error, final: false});
		w.state = 'backing-off';
		w.nextPollAt = Date.now() + retryDelayMs(w.attempt, retryAfterOf(error), this.#options.retry, this.#options.random);
		this.#syncState(w);
		this.#markDirty(w);
	}

	// ---- applying what we learn --------------------------------------------------------------------

	/**
	 * Record a status (from a poll, a one-shot call or another tab) and announce it when it is new.
	 * Older versions than the one we know are ignored.
	 * @param {Watch} w
	 * @param {JobStatus} status
	 * @param {{etag: string | null, publish: boolean}} options
	 */
	#applyStatus(w, status, {etag, publish}) {
		if (!isStatusLike(status) || (w.version !== null && status.version < w.version)) {
			return;
		}

		const previous = w.status;
		const isNew = previous === null || status.version !== w.version;
		w.status = status;
		w.version = status.version;
		if (etag) {
			w.etag = etag;
			w.etagVersion = status.version;
		}

		if (typeof status.poll_after_ms === 'number') {
			w.hintMs = status.poll_after_ms;
		}

		if (isTerminalStatus(status.status)) {
			w.phase = 'result';
		}

		this.#markDirty(w);
		if (!isNew) {
			return;
		}

		this.#emit('update', {id: w.id, status});
		for (const waiter of w.waiters) {
			this.#callOnUpdate(w, waiter, status);
		}

		if (progressChanged(previous?.progress, status.progress)) {
			this.#emit('progress', {id: w.id, progress: status.progress, status});
		}

		if (publish) {
			this.#coordinator.publish({type: 'status', id: w.id, status, etag: w.etagVersion === status.version ? w.etag : null});
		}
	}

	/**
	 * A full job fetched by get() or cancel(): finish the watch when terminal, else record its status.
	 * @param {string} id
	 * @param {Job} job
	 */
	#learnJob(id, job) {
		const w = this.#watches.get(id);
		if (!w) {
			return;
		}

		if (isTerminalStatus(job.status)) {
			this.#finish(w, job, true);
		} else {
			this.#applyStatus(w, statusFromJob(job), {etag: null, publish: true});
		}
	}

	/**
	 * A one-shot status call found the job terminal: fetch the result now rather than at the next poll.
	 * @param {Watch} w
	 */
	#pullResultForward(w) {
		if (w.phase === 'result' && w.role === 'leader' && !w.inFlight) {
			w.nextPollAt = Date.now();
			this.#arm();
		}
	}

	/** @param {any} message */
	#onMessage(message) {
		if (typeof message !== 'object' || message === null || typeof message.id !== 'string') {
			return;
		}

		const w = this.#watches.get(message.id);
		if (!w) {
			return;
		}

		if (message.type === 'status' && message.status) {
			this.#applyStatus(w, message.status, {etag: message.etag ?? null, publish: false});
		} else if (message.type === 'done' && message.job) {
			this.#finish(w, message.job, false);
		} else if (message.type === 'sync' && w.role === 'leader') {
			if (w.status) {
				this.#coordinator.publish({type: 'status', id: w.id, status: w.status, etag: w.etagVersion === w.version ? w.etag : null});
			}

			this.#announceLeader(w);
		} else if (message.type === 'leader' && message.hidden === true) {
			this.#takeOverFromHiddenLeader(w);
		}
	}

	/**
	 * Tell the other tabs whether this leader is hidden (a hidden leader polls slowly).
	 * @param {Watch} w
	 */
	#announceLeader(w) {
		this.#coordinator.publish({type: 'leader', id: w.id, hidden: this.#hidden});
	}

	/**
	 * A visible follower takes over a job whose leader is hidden.
	 * @param {Watch} w
	 */
	#takeOverFromHiddenLeader(w) {
		if (w.role === 'follower' && this.#options.document && !this.#hidden && !w.paused && w.state === 'active') {
			w.election?.claim();
		}
	}

	// ---- environment signals -----------------------------------------------------------------------

	#onVisibilityChange = () => {
		const hidden = isHidden(this.#options.document);
		if (hidden === this.#hidden) {
			return;
		}

		this.#hidden = hidden;
		const now = Date.now();
		for (const w of this.#watches.values()) {
			if (hidden) {
				// Going out of view: let a visible follower take over this job.
				if (w.role === 'leader') {
					this.#announceLeader(w);
				}
			} else if (w.paused || w.state !== 'active') {
				continue;
			} else if (w.role === 'leader') {
				// Back in view: one immediate catch-up poll.
				w.nextPollAt = now;
			} else if (w.role === 'follower') {
				// Take over only if the leader turns out to be hidden (it answers the sync).
				this.#coordinator.publish({type: 'sync', id: w.id});
			}
		}

		this.#arm();
	};

	#onOffline = () => {
		if (this.#offline) {
			return;
		}

		this.#offline = true;
		this.#abortPolls();
		for (const w of this.#watches.values()) {
			this.#syncState(w);
		}

		this.#arm();
	};

	#onOnline = () => {
		// Whatever we believed, the network may be back: probe now instead of waiting out backoff.
		this.#offline = false;
		this.#breaker.probeNow();
		const now = Date.now();
		for (const w of this.#watches.values()) {
			if (w.role === 'leader' && !w.paused && !w.inFlight && (w.state === 'active' || w.state === 'backing-off')) {
				w.attempt = 0;
				w.state = 'active';
				w.nextPollAt = now;
				this.#markDirty(w);
			}

			this.#syncState(w);
		}

		this.#arm();
	};

	// ---- helpers -----------------------------------------------------------------------------------

	/**
	 * A one-shot request with retries (full-jitter backoff, Retry-After), under the breaker.
	 * @param {RequestSpec} request
	 * @param {AbortSignal | undefined} signal
	 * @returns {Promise<Answer>}
	 */
	async #send(request, signal) {
		if (this.#closed) {
			throw new AbortError('The client is closed');
		}

		const linked = linkSignals([signal, this.#closeController.signal]);
		const {retry, random} = this.#options;
		try {
			for (let attempt = 1; ; attempt += 1) {
				const holdMs = this.#holdUntil - Date.now();
				if (holdMs > 0) {
					await delay(holdMs, {signal: linked.signal});
				}

				const permit = this.#breaker.tryAcquire();
				if (!permit) {
					throw new CircuitOpenError(this.#breaker.availableAt());
				}

				try {
					const answer = await this.#transport.request({...request, signal: linked.signal});
					permit.success();
					this.#lastSuccessAt = Date.now();
					return answer;
				} catch (error) {
					if (linked.signal.aborted) {
						permit.release();
						throw error;
					}

					if (isServerFailure(error)) {
						permit.failure();
					} else {
						permit.success();
					}

					this.#holdForRetryAfter(error);
					if (!isRetryableError(error) || attempt >= retry.maxAttempts) {
						throw error;
					}

					await delay(retryDelayMs(attempt, retryAfterOf(error), retry, random), {signal: linked.signal});
				} finally {
					this.#breakerDirty = true;
					this.#queueFlush();
				}
			}
		} finally {
			linked.dispose();
		}
	}

	/**
	 * A 429 or 503 with Retry-After speaks for the whole client, not one job: hold every request until then.
	 * @param {unknown} error
	 */
	#holdForRetryAfter(error) {
		if (error instanceof HTTPError && (error.status === 429 || error.status === 503) && error.retryAfterMs !== null) {
			const holdMs = Math.min(error.retryAfterMs, this.#options.retry.maxRetryAfterMs);
			this.#holdUntil = Math.max(this.#holdUntil, Date.now() + holdMs);
		}
	}

	/** @returns {number} earliest time the breaker and the Retry-After hold let a request go */
	#gateAt() {
		return Math.max(this.#breaker.availableAt(), this.#holdUntil);
	}

	/**
	 * @param {number | undefined} waitSeconds
	 * @returns {number | undefined}
	 */
	#timeoutFor(waitSeconds) {
		return waitSeconds === undefined ? undefined : this.#options.requestTimeoutMs + (waitSeconds * 1000);
	}

	/** @param {string} id */
	#jobPath(id) {
		return `/api/ai/jobs/${encodeURIComponent(id)}`;
	}

	/**
	 * @param {string | undefined} id
	 * @returns {Watch[]}
	 */
	#targets(id) {
		if (id === undefined) {
			return [...this.#watches.values()];
		}

		const w = this.#watches.get(id);
		return w ? [w] : [];
	}

	/** @param {Watch} w */
	#isCurrent(w) {
		return this.#watches.get(w.id) === w;
	}

	/** @param {Watch} w */
	#isPollable(w) {
		return w.nextPollAt !== null && !w.paused && !w.inFlight && (w.state === 'active' || w.state === 'backing-off');
	}

	/**
	 * @param {Watch} w
	 * @returns {WatchState}
	 */
	#effectiveState(w) {
		if (w.state === 'done' || w.state === 'failed') {
			return w.state;
		}

		return w.paused || this.#paused || this.#offline ? 'paused' : w.state;
	}

	/**
	 * Announce the watch's state when it changed since the last announcement.
	 * @param {Watch} w
	 */
	#syncState(w) {
		const state = this.#effectiveState(w);
		if (state !== w.reported) {
			const previous = w.reported;
			w.reported = state;
			this.#emit('statechange', {id: w.id, state, previous});
		}
	}

	/**
	 * @param {Watch} w
	 * @param {Waiter} waiter
	 * @param {JobStatus} status
	 */
	#callOnUpdate(w, waiter, status) {
		if (!waiter.onUpdate) {
			return;
		}

		try {
			waiter.onUpdate(status);
		} catch (error) {
			// A throwing callback must not stop polling; surface it as an event instead.
			this.#emit('error', {id: w.id, error, final: false});
		}
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

	/** @param {Watch} w */
	#markDirty(w) {
		if (!this.#isCurrent(w)) {
			return;
		}

		this.#dirty.set(w.id, toPersisted(w));
		this.#queueFlush();
	}

	/** Coalesce storage writes: many watches change in one poll round, storage is written once. */
	#queueFlush() {
		if (this.#flushQueued) {
			return;
		}

		this.#flushQueued = true;
		queueMicrotask(() => this.#flush());
	}

	#flush() {
		this.#flushQueued = false;
		if (this.#dirty.size === 0 && !this.#breakerDirty) {
			return;
		}

		const jobs = Object.fromEntries(this.#dirty);
		this.#dirty.clear();
		let breaker;
		if (this.#breakerDirty) {
			this.#breakerDirty = false;
			const snapshot = this.#breaker.snapshot();
			const serialized = JSON.stringify(snapshot);
			if (serialized !== this.#savedBreaker) {
				this.#savedBreaker = serialized;
				breaker = snapshot;
			}
		}

		if (Object.keys(jobs).length > 0 || breaker) {
			this.#store.write({jobs, breaker});
		}
	}

	/**
	 * @param {string} type
	 * @param {unknown} detail
	 */
	#emit(type, detail) {
		this.dispatchEvent(new CustomEvent(type, {detail}));
	}
}

/**
 * Create a client. Options are validated at once; a TypeError names the first bad one.
 * @param {JobsClientOptions} options
 * @returns {JobsClient}
 */
export function createJobsClient(options) {
	return new JobsClient(options);
}
