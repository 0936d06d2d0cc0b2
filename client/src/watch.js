/** The record the client keeps per watched job, and its conversions to and from storage and the wire. */

import {isTerminalStatus} from './schedule.js';

/** @typedef {import('./index.js').Job} Job */
/** @typedef {import('./index.js').JobStatus} JobStatus */
/** @typedef {import('./index.js').WatchState} WatchState */
/** @typedef {import('./storage.js').PersistedWatch} PersistedWatch */

/**
 * One caller waiting on a watch() promise.
 * @typedef {object} Waiter
 * @property {(job: Job) => void} resolve
 * @property {(error: unknown) => void} reject
 * @property {((status: JobStatus) => void) | undefined} onUpdate
 * @property {() => void} dispose removes the caller's abort listener
 */

/**
 * Everything the client tracks about one watched job.
 * @typedef {object} Watch
 * @property {string} id
 * @property {'active' | 'backing-off' | 'failed' | 'done'} state 'paused' is derived from the pause flags
 * @property {WatchState | null} reported last state announced through `statechange`
 * @property {boolean} paused paused with pause(id)
 * @property {'leader' | 'follower' | null} role null until the election answers, and while paused
 * @property {import('./coordination.js').Election | null} election
 * @property {number | null} leaderSince epoch ms this tab became the job's leader; orders two leaders
 * @property {number | null} takeoverAt epoch ms a follower takes over unless the leader is heard from first
 * @property {number | null} nextPollAt epoch ms; null when this tab does not poll the job
 * @property {number | null} resumeAt a persisted due time, applied once this tab is elected
 * @property {number} attempt consecutive failed polls
 * @property {number | null} deadlineAt epoch ms
 * @property {number | null} deadlineMs
 * @property {import('./delay.js').AbsoluteTimer | null} deadlineTimer
 * @property {number | null} version
 * @property {string | null} etag
 * @property {number | null} etagVersion the version `etag` describes
 * @property {number | null} hintMs last poll_after_ms (or Retry-After) from the server
 * @property {JobStatus | null} status
 * @property {'status' | 'result'} phase 'result' once terminal: the full job is fetched next
 * @property {boolean} forceSingle the batch endpoint did not know the job; ask it alone
 * @property {boolean} inFlight
 * @property {AbortController | null} controller the single-job request in flight, if any
 * @property {Set<Waiter>} waiters
 */

/**
 * A new watch, or one continued from what a previous page persisted.
 * @param {string} id
 * @param {PersistedWatch | null} saved
 * @param {number} deadlineMs Infinity for none; ignored when `saved` carries its own deadline
 * @param {number} now epoch ms
 * @returns {Watch}
 */
export function createWatch(id, saved, deadlineMs, now) {
	const finite = Number.isFinite(deadlineMs);
	const status = /** @type {JobStatus | null} */ (saved?.status ?? null);
	return {
		id,
		state: saved?.state === 'backing-off' ? 'backing-off' : 'active',
		reported: null,
		paused: saved?.paused === true,
		role: null,
		election: null,
		leaderSince: null,
		takeoverAt: null,
		nextPollAt: null,
		resumeAt: saved?.nextPollAt ?? null,
		attempt: saved?.attempt ?? 0,
		deadlineAt: saved ? (saved.deadlineAt ?? null) : (finite ? now + deadlineMs : null),
		deadlineMs: saved ? (saved.deadlineMs ?? null) : (finite ? deadlineMs : null),
		deadlineTimer: null,
		version: saved?.version ?? null,
		etag: saved?.etag ?? null,
		etagVersion: saved?.etagVersion ?? null,
		hintMs: saved?.hintMs ?? null,
		status,
		phase: isTerminalStatus(status?.status) ? 'result' : 'status',
		forceSingle: false,
		inFlight: false,
		controller: null,
		waiters: new Set(),
	};
}

/**
 * What survives a reload. A follower has no due time of its own; it keeps any it was resumed with.
 * @param {Watch} w
 * @returns {PersistedWatch}
 */
export function toPersisted(w) {
	return {
		nextPollAt: w.nextPollAt ?? w.resumeAt,
		attempt: w.attempt,
		deadlineAt: w.deadlineAt,
		deadlineMs: w.deadlineMs,
		version: w.version,
		etag: w.etag,
		etagVersion: w.etagVersion,
		hintMs: w.hintMs,
		paused: w.paused,
		state: w.state === 'backing-off' ? 'backing-off' : 'active',
		status: w.status,
	};
}

/**
 * Whether a value has what the scheduler relies on; anything else (a proxy's page, a foreign message)
 * is ignored rather than trusted.
 * @param {unknown} value
 * @returns {value is JobStatus}
 */
export function isStatusLike(value) {
	if (typeof value !== 'object' || value === null) {
		return false;
	}

	const candidate = /** @type {{id?: unknown, status?: unknown, version?: unknown}} */ (value);
	return typeof candidate.id === 'string' && typeof candidate.status === 'string' && typeof candidate.version === 'number';
}

/**
 * The status view of a full job (the fields a Status and a Job share).
 * @param {Job} job
 * @returns {JobStatus}
 */
export function statusFromJob(job) {
	return {
		id: job.id,
		status: job.status,
		progress: job.progress,
		version: job.version,
		created_at: job.created_at,
		started_at: job.started_at,
		finished_at: job.finished_at,
		updated_at: job.updated_at,
		estimated_completion_at: job.estimated_completion_at,
		queue_position: null,
		error: job.error,
		poll_after_ms: null,
	};
}

/**
 * @param {JobStatus['progress'] | undefined} before
 * @param {JobStatus['progress']} after
 * @returns {boolean}
 */
export function progressChanged(before, after) {
	if (!after) {
		return false;
	}

	return !before || before.percent !== after.percent || before.stage !== after.stage || before.message !== after.message;
}
