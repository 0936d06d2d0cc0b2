/**
 * The watched jobs of one client, and each watch's life: started, told what the server said, finished,
 * failed or dropped. It settles the promises of the callers waiting in watch(), announces what changed
 * as events, and hands every change to persistence. Who polls a job, and when, is decided elsewhere.
 */

import {abortReason, AbsoluteTimer} from './delay.js';
import {AbortError, DeadlineError} from './errors.js';
import {isTerminalStatus} from './schedule.js';
import {createWatch, isStatusLike, progressChanged, statusFromJob, toPersisted} from './watch.js';

/** @typedef {import('./index.js').Job} Job */
/** @typedef {import('./index.js').JobStatus} JobStatus */
/** @typedef {import('./index.js').WatchState} WatchState */
/** @typedef {import('./storage.js').PersistedWatch} PersistedWatch */
/** @typedef {import('./watch.js').Watch} Watch */
/** @typedef {import('./watch.js').Waiter} Waiter */
/** @typedef {import('./persistence.js').Persistence} Persistence */
/** @typedef {import('./leadership.js').Leadership} Leadership */
/** @typedef {import('./online.js').OnlineManager} OnlineManager */

export class WatchRegistry {
	/** @type {Map<string, Watch>} */
	#watches = new Map();
	#emit;
	#persistence;
	#leadership;
	#online;
	#onRemoved;
	/** Set by pause() without an id: no job is polled until resume(). */
	pausedAll = false;

	/**
	 * @param {object} options
	 * @param {(type: string, detail: unknown) => void} options.emit dispatches a client event
	 * @param {Persistence} options.persistence
	 * @param {Leadership} options.leadership
	 * @param {OnlineManager} options.online
	 * @param {() => void} options.onRemoved a watch left the registry (the scheduler re-arms)
	 */
	constructor({emit, persistence, leadership, online, onRemoved}) {
		this.#emit = emit;
		this.#persistence = persistence;
		this.#leadership = leadership;
		this.#online = online;
		this.#onRemoved = onRemoved;
	}

	/**
	 * @param {string} id
	 * @returns {Watch | undefined}
	 */
	get(id) {
		return this.#watches.get(id);
	}

	/** @returns {Iterable<Watch>} */
	values() {
		return this.#watches.values();
	}

	/**
	 * One job's watch, or every watch when no id is given.
	 * @param {string | undefined} id
	 * @returns {Watch[]}
	 */
	targets(id) {
		if (id === undefined) {
			return [...this.#watches.values()];
		}

		const w = this.#watches.get(id);
		return w ? [w] : [];
	}

	/**
	 * Whether `w` is still the watch of its job (not finished, failed, dropped or replaced).
	 * @param {Watch} w
	 */
	isCurrent(w) {
		return this.#watches.get(w.id) === w;
	}

	/**
	 * Whether this tab would poll the job if it led it: not paused, not finished, and the client is polling.
	 * @param {Watch} w
	 */
	wantsPolling(w) {
		return !w.paused && !this.pausedAll && !this.#online.offline && (w.state === 'active' || w.state === 'backing-off');
	}

	/**
	 * Start watching a job, or continue a watch a previous page persisted.
	 * @param {string} id
	 * @param {PersistedWatch | null} saved
	 * @param {number} deadlineMs
	 * @returns {Watch}
	 */
	start(id, saved, deadlineMs) {
		const w = createWatch(id, saved, deadlineMs, Date.now());
		this.#watches.set(id, w);
		if (w.deadlineAt !== null) {
			const deadlineAt = w.deadlineAt;
			w.deadlineTimer = new AbsoluteTimer(() => {
				this.fail(w, new DeadlineError(id, deadlineAt, w.deadlineMs ?? Number.NaN));
			});
			w.deadlineTimer.start(deadlineAt);
		}

		this.syncState(w);
		this.persist(w);
		if (!w.paused && !this.pausedAll) {
			this.#leadership.elect(w);
		}

		return w;
	}

	/**
	 * A caller waiting for the watch to end. Aborting `signal` rejects this caller only; the last one to
	 * leave stops the watch.
	 * @param {Watch} w
	 * @param {((status: JobStatus) => void) | undefined} onUpdate
	 * @param {AbortSignal | undefined} signal
	 * @returns {Promise<Job>}
	 */
	addWaiter(w, onUpdate, signal) {
		return new Promise((resolve, reject) => {
			/** @type {Waiter} */
			const waiter = {resolve, reject, onUpdate, dispose() {}};
			if (signal) {
				const onAbort = () => {
					w.waiters.delete(waiter);
					reject(abortReason(signal));
					if (w.waiters.size === 0 && this.isCurrent(w)) {
						this.detach(w, {forget: true});
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
	 * Stop tracking a watch: its deadline, election and own request. `forget` also drops it from storage.
	 * @param {Watch} w
	 * @param {{forget: boolean}} options
	 */
	detach(w, {forget}) {
		if (this.isCurrent(w)) {
			this.#watches.delete(w.id);
		}

		this.#leadership.resign(w);
		w.deadlineTimer?.clear();
		w.controller?.abort();
		for (const waiter of w.waiters) {
			waiter.dispose();
		}

		if (forget) {
			this.#persistence.forget(w.id);
		}

		this.#onRemoved();
	}

	/**
	 * Stop watching a job at the caller's request; its waiters reject with AbortError.
	 * @param {Watch} w
	 * @param {string} reason
	 * @param {{forget: boolean}} options
	 */
	abandon(w, reason, {forget}) {
		this.detach(w, {forget});
		for (const waiter of w.waiters) {
			waiter.reject(new AbortError(reason));
		}
	}

	/**
	 * The job reached a terminal status and we hold the full job: resolve every waiter.
	 * @param {Watch} w
	 * @param {Job} job
	 * @param {{share: boolean}} options share: tell the other tabs (false when it came from one)
	 */
	finish(w, job, {share}) {
		if (!this.isCurrent(w)) {
			return;
		}

		this.applyStatus(w, statusFromJob(job), {etag: null, share: false});
		w.state = 'done';
		this.detach(w, {forget: true});
		this.syncState(w);
		this.#emit('done', {id: w.id, job});
		if (share) {
			this.#leadership.shareDone(w.id, job);
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
	fail(w, error) {
		if (!this.isCurrent(w)) {
			return;
		}

		w.state = 'failed';
		this.detach(w, {forget: true});
		this.syncState(w);
		this.#emit('error', {id: w.id, error, final: true});
		for (const waiter of w.waiters) {
			waiter.reject(error);
		}
	}

	/**
	 * A poll of this job failed but will be retried (or another tab keeps polling it).
	 * @param {Watch} w
	 * @param {unknown} error
	 */
	reportError(w, error) {
		this.#emit('error', {id: w.id, error, final: false});
	}

	/**
	 * Record a status (from a poll, a one-shot call or another tab) and announce it when it is new.
	 * Older versions than the one we know are ignored.
	 * @param {Watch} w
	 * @param {unknown} status
	 * @param {{etag: string | null, share: boolean}} options share: tell the other tabs when it is new
	 */
	applyStatus(w, status, {etag, share}) {
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

		this.persist(w);
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

		if (share) {
			this.#leadership.shareStatus(w);
		}
	}

	/**
	 * A full job fetched by get() or cancel(): finish the watch when terminal, else record its status.
	 * @param {string} id
	 * @param {Job} job
	 */
	learnJob(id, job) {
		const w = this.#watches.get(id);
		if (!w) {
			return;
		}

		if (isTerminalStatus(job.status)) {
			this.finish(w, job, {share: true});
		} else {
			this.applyStatus(w, statusFromJob(job), {etag: null, share: true});
		}
	}

	/**
	 * Hand the watch's record to persistence, unless it has ended.
	 * @param {Watch} w
	 */
	persist(w) {
		if (this.isCurrent(w)) {
			this.#persistence.save(w.id, toPersisted(w));
		}
	}

	/**
	 * @param {Watch} w
	 * @returns {WatchState}
	 */
	effectiveState(w) {
		if (w.state === 'done' || w.state === 'failed') {
			return w.state;
		}

		return w.paused || this.pausedAll || this.#online.offline ? 'paused' : w.state;
	}

	/**
	 * Announce the watch's state when it changed since the last announcement.
	 * @param {Watch} w
	 */
	syncState(w) {
		const state = this.effectiveState(w);
		if (state !== w.reported) {
			const previous = w.reported;
			w.reported = state;
			this.#emit('statechange', {id: w.id, state, previous});
		}
	}

	/**
	 * Drop every watch, keeping them in storage for the next page; their waiters reject with AbortError.
	 * @param {string} reason
	 */
	close(reason) {
		for (const w of [...this.#watches.values()]) {
			this.abandon(w, reason, {forget: false});
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
			this.reportError(w, error);
		}
	}
}
