/**
 * Client-wide circuit breaker: after `failureThreshold` consecutive server failures it opens and refuses
 * requests for `coolDownMs`, then lets exactly one probe through (half-open); the probe's outcome closes
 * or re-opens it.
 */

import {HTTPError, NetworkError, TimeoutError} from './errors.js';

/** @typedef {'closed' | 'open' | 'half-open'} BreakerState */

/**
 * @typedef {object} BreakerSnapshot
 * @property {BreakerState} state
 * @property {number} failures
 * @property {number | null} openedAt epoch milliseconds
 */

/**
 * Whether an error says the server (or the path to it) is unhealthy. Answers such as 404 or 429 prove the
 * server is up, so they do not count.
 * @param {unknown} error
 * @returns {boolean}
 */
export function isServerFailure(error) {
	if (error instanceof NetworkError || error instanceof TimeoutError) {
		return true;
	}

	return error instanceof HTTPError && (error.status === 408 || error.status >= 500);
}

/**
 * @typedef {object} Permit
 * @property {() => void} success the request got a healthy answer
 * @property {() => void} failure the request failed in a way `isServerFailure` accepts
 * @property {() => void} release the request ended without telling anything (aborted by us)
 */

export class CircuitBreaker {
	/** @type {BreakerState} */
	#state = 'closed';
	#failures = 0;
	/** @type {number | null} */
	#openedAt = null;
	#probeInFlight = false;
	#failureThreshold;
	#coolDownMs;
	#now;
	#onChange;

	/**
	 * @param {object} options
	 * @param {number} options.failureThreshold
	 * @param {number} options.coolDownMs
	 * @param {() => number} [options.now]
	 * @param {(state: BreakerState, previous: BreakerState) => void} [options.onChange]
	 */
	constructor({failureThreshold, coolDownMs, now = Date.now, onChange = () => {}}) {
		this.#failureThreshold = failureThreshold;
		this.#coolDownMs = coolDownMs;
		this.#now = now;
		this.#onChange = onChange;
	}

	/** Current state; an open breaker whose cool-down has passed reports (and becomes) half-open. */
	get state() {
		this.#refresh();
		return this.#state;
	}

	/** Consecutive server failures seen since the last healthy answer. */
	get consecutiveFailures() {
		return this.#failures;
	}

	/**
	 * Earliest time a request may be sent: 0 when closed, the end of the cool-down when open,
	 * Infinity while a half-open probe is in flight (its outcome decides).
	 * @returns {number}
	 */
	availableAt() {
		this.#refresh();
		if (this.#state === 'open') {
			return /** @type {number} */ (this.#openedAt) + this.#coolDownMs;
		}

		if (this.#state === 'half-open' && this.#probeInFlight) {
			return Number.POSITIVE_INFINITY;
		}

		return 0;
	}

	/**
	 * Ask to send one request. Null means refused; otherwise report the outcome on the permit (once).
	 * @returns {Permit | null}
	 */
	tryAcquire() {
		this.#refresh();
		if (this.#state === 'open') {
			return null;
		}

		let probe = false;
		if (this.#state === 'half-open') {
			if (this.#probeInFlight) {
				return null;
			}

			this.#probeInFlight = true;
			probe = true;
		}

		let settled = false;
		/** @param {() => void} outcome */
		const settle = (outcome) => {
			if (settled) {
				return;
			}

			settled = true;
			if (probe) {
				this.#probeInFlight = false;
			}

			outcome();
		};

		return {
			success: () => settle(() => this.#recordSuccess()),
			failure: () => settle(() => this.#recordFailure()),
			release: () => settle(() => {}),
		};
	}

	/** Skip the rest of the cool-down (the network just came back): the next request is a probe. */
	probeNow() {
		this.#refresh();
		if (this.#state === 'open') {
			this.#transition('half-open');
		}
	}

	/** @returns {BreakerSnapshot} */
	snapshot() {
		this.#refresh();
		return {state: this.#state, failures: this.#failures, openedAt: this.#openedAt};
	}

	/**
	 * Restore a snapshot taken by another instance (after a page reload); an in-flight probe is not restored.
	 * @param {BreakerSnapshot} snapshot
	 */
	restore(snapshot) {
		const previous = this.#state;
		this.#state = snapshot.state;
		this.#failures = snapshot.failures;
		this.#openedAt = snapshot.openedAt;
		this.#probeInFlight = false;
		if (this.#state !== previous) {
			this.#onChange(this.#state, previous);
		}

		this.#refresh();
	}

	#recordSuccess() {
		this.#failures = 0;
		if (this.#state !== 'closed') {
			this.#openedAt = null;
			this.#transition('closed');
		}
	}

	#recordFailure() {
		this.#failures += 1;
		if (this.#state === 'half-open' || (this.#state === 'closed' && this.#failures >= this.#failureThreshold)) {
			this.#openedAt = this.#now();
			this.#transition('open');
		}
	}

	#refresh() {
		if (this.#state === 'open' && this.#now() >= /** @type {number} */ (this.#openedAt) + this.#coolDownMs) {
			this.#transition('half-open');
		}
	}

	/** @param {BreakerState} state */
	#transition(state) {
		const previous = this.#state;
		this.#state = state;
		this.#onChange(state, previous);
	}
}
