/**
 * Network state from the window's `online` / `offline` events; others subscribe to them.
 *
 * `navigator.onLine` is never read: it says "online" behind a dead Wi-Fi. An `offline` event pauses
 * polling; every `online` event is passed on, even when we already believed we were online, because it
 * is a good moment to probe the server instead of waiting out a backoff. Failed fetches, not these
 * events, are what drive backoff and the circuit breaker.
 */

/** @typedef {import('./options.js').EventTargetLike} EventTargetLike */

export class OnlineManager {
	#window;
	#offline = false;
	/** @type {Set<(online: boolean) => void>} */
	#listeners = new Set();

	/** @param {EventTargetLike | null} window null: network events are ignored */
	constructor(window) {
		this.#window = window;
		window?.addEventListener('online', this.#onOnline);
		window?.addEventListener('offline', this.#onOffline);
	}

	/** True after an `offline` event until the next `online` event. */
	get offline() {
		return this.#offline;
	}

	/**
	 * Call `listener(false)` when the browser goes offline and `listener(true)` on every `online` event.
	 * @param {(online: boolean) => void} listener
	 * @returns {() => void} unsubscribe
	 */
	subscribe(listener) {
		this.#listeners.add(listener);
		return () => this.#listeners.delete(listener);
	}

	close() {
		this.#window?.removeEventListener('online', this.#onOnline);
		this.#window?.removeEventListener('offline', this.#onOffline);
		this.#listeners.clear();
	}

	/** @param {boolean} online */
	#notify(online) {
		for (const listener of this.#listeners) {
			listener(online);
		}
	}

	#onOffline = () => {
		if (this.#offline) {
			return;
		}

		this.#offline = true;
		this.#notify(false);
	};

	#onOnline = () => {
		this.#offline = false;
		this.#notify(true);
	};
}
