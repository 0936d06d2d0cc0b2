/**
 * What survives a reload: each watch's record and the breaker, written to the StateStore.
 *
 * Changes are coalesced: many watches change in one poll round (and the breaker after every request), so
 * they are collected and written once, in a microtask. The breaker is written only when its snapshot
 * differs from the one last written.
 */

/** @typedef {import('./breaker.js').BreakerSnapshot} BreakerSnapshot */
/** @typedef {import('./storage.js').PersistedState} PersistedState */
/** @typedef {import('./storage.js').PersistedWatch} PersistedWatch */
/** @typedef {import('./storage.js').StateStore} StateStore */

export class Persistence {
	#store;
	#snapshotBreaker;
	/** @type {Map<string, PersistedWatch | null>} null drops the record */
	#dirty = new Map();
	#breakerDirty = false;
	/** @type {string | null} the breaker snapshot last written, to skip identical writes */
	#savedBreaker = null;
	#flushQueued = false;

	/**
	 * @param {StateStore} store
	 * @param {() => BreakerSnapshot} snapshotBreaker
	 */
	constructor(store, snapshotBreaker) {
		this.#store = store;
		this.#snapshotBreaker = snapshotBreaker;
	}

	/** @returns {PersistedState} */
	load() {
		return this.#store.load();
	}

	/**
	 * @param {string} id
	 * @param {PersistedWatch} record
	 */
	save(id, record) {
		this.#dirty.set(id, record);
		this.#queueFlush();
	}

	/** @param {string} id */
	forget(id) {
		this.#dirty.set(id, null);
		this.#queueFlush();
	}

	/** The breaker may have changed (its state, or only its failure count). */
	breakerChanged() {
		this.#breakerDirty = true;
		this.#queueFlush();
	}

	/** Write what changed now (close() does, so nothing waits for a microtask that may never run). */
	flush() {
		this.#flushQueued = false;
		if (this.#dirty.size === 0 && !this.#breakerDirty) {
			return;
		}

		const jobs = Object.fromEntries(this.#dirty);
		this.#dirty.clear();
		let breaker;
		if (this.#breakerDirty) {
			this.#breakerDirty = false;
			const snapshot = this.#snapshotBreaker();
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

	#queueFlush() {
		if (this.#flushQueued) {
			return;
		}

		this.#flushQueued = true;
		queueMicrotask(() => this.flush());
	}
}
