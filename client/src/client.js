/**
 * The jobs client: the public API, a thin facade over the parts that do the work.
 *
 * - retryer.js: one-shot calls with retries, under the circuit breaker (breaker.js) and the Retry-After
 *   hold of their request class (holds.js);
 * - watch-registry.js: the watched jobs and each watch's life, from start to its settled promise;
 * - scheduler.js: the poll loop that decides when each job this tab leads is polled;
 * - leadership.js: which tab polls each job, and taking over from a hidden or silent leader;
 * - visibility.js, online.js: page visibility and network events, which the others subscribe to;
 * - persistence.js: what survives a reload.
 */

import {CircuitBreaker} from './breaker.js';
import {abortReason} from './delay.js';
import {AbortError} from './errors.js';
import {RequestHolds} from './holds.js';
import {jobPath, Transport} from './http.js';
import {Leadership} from './leadership.js';
import {OnlineManager} from './online.js';
import {resolveOptions} from './options.js';
import {Persistence} from './persistence.js';
import {summarize} from './poll-log.js';
import {Retryer} from './retryer.js';
import {Scheduler} from './scheduler.js';
import {StateStore} from './storage.js';
import {VisibilityManager} from './visibility.js';
import {WatchRegistry} from './watch-registry.js';

/** @typedef {import('./index.js').Job} Job */
/** @typedef {import('./index.js').JobStatus} JobStatus */
/** @typedef {import('./index.js').JobsPage} JobsPage */
/** @typedef {import('./index.js').ListQuery} ListQuery */
/** @typedef {import('./index.js').WatchOptions} WatchOptions */
/** @typedef {import('./index.js').ResumeOptions} ResumeOptions */
/** @typedef {import('./index.js').CallOptions} CallOptions */
/** @typedef {import('./index.js').SubmitOptions} SubmitOptions */
/** @typedef {import('./index.js').HealthReport} HealthReport */
/** @typedef {import('./index.js').JobsClientOptions} JobsClientOptions */
/** @typedef {import('./options.js').ResolvedOptions} ResolvedOptions */
/** @typedef {import('./poll-log.js').PollLogEntry} PollLogEntry */
/** @typedef {import('./index.js').JobsClient} PublicJobsClient */

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

/** @implements {PublicJobsClient} */
export class JobsClient extends EventTarget {
	/** @type {ResolvedOptions} */
	#options;
	/** @type {CircuitBreaker} */
	#breaker;
	/** @type {Persistence} */
	#persistence;
	/** @type {VisibilityManager} */
	#visibility;
	/** @type {OnlineManager} */
	#online;
	/** @type {Leadership} */
	#leadership;
	/** @type {WatchRegistry} */
	#registry;
	/** @type {Scheduler} */
	#scheduler;
	/** @type {Retryer} */
	#retryer;
	#closeController = new AbortController();
	#closed = false;
	/** @type {number | null} */
	#lastSuccessAt = null;

	/** @param {JobsClientOptions} options */
	constructor(options) {
		super();
		const resolved = resolveOptions(options);
		this.#options = resolved;
		const transport = new Transport(resolved);
		const holds = new RequestHolds({maxRetryAfterMs: resolved.retry.maxRetryAfterMs, random: resolved.random});
		const onAnswer = () => {
			this.#lastSuccessAt = Date.now();
		};

		const persistence = new Persistence(new StateStore(resolved.storage, `${resolved.namespace}:state`), () => breaker.snapshot());
		const breaker = new CircuitBreaker({
			...resolved.breaker,
			onChange: (state, previous) => {
				persistence.breakerChanged();
				this.#emit('breakerchange', {state, previous});
			},
		});
		const saved = persistence.load();
		if (saved.breaker) {
			breaker.restore(saved.breaker);
		}

		const visibility = new VisibilityManager(resolved.document);
		const online = new OnlineManager(resolved.window);
		// Leadership, the registry and the scheduler call each other; these closures run only after all
		// three exist (on lock grants, channel messages and timers).
		const leadership = new Leadership({
			locks: resolved.locks,
			BroadcastChannel: resolved.BroadcastChannel,
			namespace: resolved.namespace,
			visibility,
			random: resolved.random,
			handlers: {
				find: (id) => registry.get(id),
				watches: () => registry.values(),
				onLead: (w) => scheduler.lead(w),
				onFollow: (w) => scheduler.follow(w),
				onStatus: (w, status, etag) => registry.applyStatus(w, status, {etag, share: false}),
				onDone: (w, job) => registry.finish(w, job, {share: false}),
				quietMsOf: (w) => scheduler.quietMsOf(w),
				canTakeOver: (w) => registry.wantsPolling(w),
			},
		});
		const registry = new WatchRegistry({
			emit: (type, detail) => this.#emit(type, detail),
			persistence,
			leadership,
			online,
			onRemoved: () => scheduler.arm(),
		});
		const scheduler = new Scheduler({options: resolved, transport, breaker, holds, registry, leadership, persistence, visibility, online, onAnswer});
		this.#retryer = new Retryer({
			transport,
			breaker,
			holds,
			retry: resolved.retry,
			random: resolved.random,
			closeSignal: this.#closeController.signal,
			onAttempt: () => persistence.breakerChanged(),
			onAnswer,
		});
		this.#breaker = breaker;
		this.#persistence = persistence;
		this.#visibility = visibility;
		this.#online = online;
		this.#leadership = leadership;
		this.#registry = registry;
		this.#scheduler = scheduler;
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

		const answer = await this.#retryer.send({
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
		const answer = await this.#retryer.send({method: 'GET', path: jobPath(id)}, signal);
		this.#registry.learnJob(id, answer.body);
		return answer.body;
	}

	/**
	 * @param {string} id
	 * @param {CallOptions} [options]
	 * @returns {Promise<JobStatus>}
	 */
	async status(id, {signal} = {}) {
		assertJobId(id, 'status');
		const answer = await this.#retryer.send({method: 'GET', path: `${jobPath(id)}/status`}, signal);
		const w = this.#registry.get(id);
		if (w) {
			this.#registry.applyStatus(w, answer.body, {etag: answer.etag, share: true});
			this.#scheduler.fetchResultSoon(w);
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
		const answer = await this.#retryer.send({method: 'POST', path: `${jobPath(id)}/cancel`}, signal);
		this.#registry.learnJob(id, answer.body);
		return answer.body;
	}

	/**
	 * One page of jobs; pass `next_cursor` back as `cursor` for the next one.
	 * @param {ListQuery} [query]
	 * @param {CallOptions} [options]
	 * @returns {Promise<JobsPage>}
	 */
	async list({status, agent, requestId, limit, cursor} = {}, {signal} = {}) {
		const answer = await this.#retryer.send({
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

		const w = this.#registry.get(id) ?? this.#registry.start(id, null, deadlineMs ?? this.#options.deadlineMs);
		return this.#registry.addWaiter(w, onUpdate, signal);
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

		for (const [id, record] of Object.entries(this.#persistence.load().jobs)) {
			if (typeof record !== 'object' || record === null) {
				continue;
			}

			const w = this.#registry.get(id) ?? this.#registry.start(id, record, Number.POSITIVE_INFINITY);
			resumed.set(id, this.#registry.addWaiter(w, onUpdate, signal));
		}

		return resumed;
	}

	/**
	 * Stop watching a job; its watch() promises reject with AbortError. False when it was not watched.
	 * @param {string} id
	 * @returns {boolean}
	 */
	unwatch(id) {
		const w = this.#registry.get(id);
		if (!w) {
			return false;
		}

		this.#registry.abandon(w, `Stopped watching job ${id}`, {forget: true});
		return true;
	}

	/**
	 * Poll now instead of waiting: one job, or every watched job. Paused and finished watches are left alone;
	 * the circuit breaker and a server Retry-After still apply.
	 * @param {string} [id]
	 */
	refresh(id) {
		this.#scheduler.refresh(id);
	}

	/**
	 * Stop polling one job, or all of them, until resume(). In-flight polls are aborted when pausing all.
	 * A paused job's tab gives up its cross-tab leadership so another tab can poll it.
	 * @param {string} [id]
	 */
	pause(id) {
		this.#scheduler.pause(id);
	}

	/**
	 * Undo pause(); resumed jobs are polled at once.
	 * @param {string} [id]
	 */
	resume(id) {
		this.#scheduler.resume(id);
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
		/** @type {HealthReport['jobs']} */
		const jobs = {};
		for (const w of this.#registry.values()) {
			jobs[w.id] = {
				state: this.#registry.effectiveState(w),
				role: w.role,
				nextPollAt: this.#scheduler.plannedPollAt(w),
				attempt: w.attempt,
				version: w.version,
				status: w.status?.status ?? null,
				deadlineAt: w.deadlineAt,
			};
		}

		return {
			...summarize(this.#scheduler.pollLog()),
			consecutiveFailures: this.#breaker.consecutiveFailures,
			lastSuccessAt: this.#lastSuccessAt,
			breaker: this.#breaker.state,
			paused: this.#registry.pausedAll,
			offline: this.#online.offline,
			hidden: this.#visibility.hidden,
			jobs,
		};
	}

	/** @returns {PollLogEntry[]} the last `pollLogSize` poll attempts, oldest first */
	pollLog() {
		return this.#scheduler.pollLog();
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
		this.#scheduler.close();
		this.#closeController.abort(new AbortError('The client is closed'));
		this.#registry.close('The client is closed');
		this.#visibility.close();
		this.#online.close();
		this.#leadership.close();
		this.#persistence.flush();
	}

	/** Alias of close(). */
	stop() {
		this.close();
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
