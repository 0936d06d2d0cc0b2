/**
 * Whether the page is hidden, from the document's `visibilitychange`; others subscribe to changes.
 * A hidden tab polls slowly and hands its jobs to a visible tab. Alt-Tab fires no event: this is a hint
 * about the user, never about the network.
 */

/** @typedef {import('./options.js').DocumentLike} DocumentLike */

/**
 * @param {DocumentLike | null} document
 * @returns {boolean}
 */
function isHidden(document) {
	return document !== null && (document.visibilityState === 'hidden' || document.hidden === true);
}

export class VisibilityManager {
	#document;
	#hidden;
	/** @type {Set<(hidden: boolean) => void>} */
	#listeners = new Set();

	/** @param {DocumentLike | null} document null: visibility is unknown and the page counts as visible */
	constructor(document) {
		this.#document = document;
		this.#hidden = isHidden(document);
		document?.addEventListener('visibilitychange', this.#onChange);
	}

	get hidden() {
		return this.#hidden;
	}

	/** Whether a document reports visibility at all (without one, no tab can tell it is the visible one). */
	get tracked() {
		return this.#document !== null;
	}

	/**
	 * Call `listener` with the new state whenever visibility changes.
	 * @param {(hidden: boolean) => void} listener
	 * @returns {() => void} unsubscribe
	 */
	subscribe(listener) {
		this.#listeners.add(listener);
		return () => this.#listeners.delete(listener);
	}

	close() {
		this.#document?.removeEventListener('visibilitychange', this.#onChange);
		this.#listeners.clear();
	}

	#onChange = () => {
		const hidden = isHidden(this.#document);
		if (hidden === this.#hidden) {
			return;
		}

		this.#hidden = hidden;
		for (const listener of this.#listeners) {
			listener(hidden);
		}
	};
}
