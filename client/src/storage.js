/**
 * Persistence of watches and breaker state, so a reloaded page resumes where it stopped.
 *
 * Everything lives under one key as JSON. Writes re-read the stored document and change only their own
 * entry, because other tabs of the same origin write to the same key.
 */

/** @typedef {import('./breaker.js').BreakerSnapshot} BreakerSnapshot */

/**
 * @typedef {object} StorageLike
 * @property {(key: string) => string | null} getItem
 * @property {(key: string, value: string) => void} setItem
 * @property {(key: string) => void} removeItem
 */

/**
 * What a watch needs to continue after a reload.
 * @typedef {object} PersistedWatch
 * @property {number | null} nextPollAt epoch milliseconds
 * @property {number} attempt consecutive failed polls
 * @property {number | null} deadlineAt epoch milliseconds
 * @property {number | null} deadlineMs the deadline length the watch started with, null when it has none
 * @property {number | null} version last seen job version
 * @property {string | null} etag ETag of the last single status answer
 * @property {number | null} etagVersion the version that ETag describes
 * @property {number | null} hintMs last poll_after_ms from the server
 * @property {boolean} paused paused with pause(id)
 * @property {'active' | 'backing-off'} state
 * @property {object | null} status last known status object
 */

/**
 * @typedef {object} PersistedState
 * @property {BreakerSnapshot | null} breaker
 * @property {Record<string, PersistedWatch>} jobs
 */

const FORMAT_VERSION = 1;

/**
 * localStorage when this runtime has one and lets us touch it (it throws in some sandboxed frames).
 * @returns {StorageLike | null}
 */
export function defaultStorage() {
	try {
		const storage = /** @type {any} */ (globalThis).localStorage;
		return storage && typeof storage.getItem === 'function' ? storage : null;
	} catch {
		return null;
	}
}

export class StateStore {
	#storage;
	#key;

	/**
	 * @param {StorageLike | null} storage null disables persistence
	 * @param {string} key
	 */
	constructor(storage, key) {
		this.#storage = storage;
		this.#key = key;
	}

	/** @returns {PersistedState} */
	load() {
		const empty = {breaker: null, jobs: {}};
		if (!this.#storage) {
			return empty;
		}

		try {
			const raw = this.#storage.getItem(this.#key);
			const parsed = raw ? JSON.parse(raw) : null;
			if (!parsed || parsed.formatVersion !== FORMAT_VERSION || typeof parsed.jobs !== 'object' || parsed.jobs === null) {
				return empty;
			}

			return {breaker: parsed.breaker ?? null, jobs: parsed.jobs};
		} catch {
			// Unreadable or foreign data: start fresh rather than fail the client.
			return empty;
		}
	}

	/**
	 * Write several changes at once: a watch record per id (null removes it) and, optionally, the breaker.
	 * @param {{jobs?: Record<string, PersistedWatch | null>, breaker?: BreakerSnapshot}} changes
	 */
	write({jobs = {}, breaker}) {
		this.#update((state) => {
			for (const [id, watch] of Object.entries(jobs)) {
				if (watch === null) {
					delete state.jobs[id];
				} else {
					state.jobs[id] = watch;
				}
			}

			if (breaker) {
				state.breaker = breaker;
			}
		});
	}

	/** @param {(state: PersistedState) => void} change */
	#update(change) {
		if (!this.#storage) {
			return;
		}

		const state = this.load();
		change(state);
		try {
			if (Object.keys(state.jobs).length === 0 && (state.breaker === null || state.breaker.state === 'closed')) {
				this.#storage.removeItem(this.#key);
			} else {
				this.#storage.setItem(this.#key, JSON.stringify({formatVersion: FORMAT_VERSION, ...state}));
			}
		} catch {
			// Quota exceeded or storage disabled (private mode): persistence is best effort, polling goes on.
		}
	}
}
