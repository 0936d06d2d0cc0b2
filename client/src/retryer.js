/**
 * One-shot calls with retries: full-jitter backoff, or the server's Retry-After, under the circuit
 * breaker and the hold of the call's request class. Each wait is abort-aware and clears its timer.
 */

import {isServerFailure} from './breaker.js';
import {delay, linkSignals} from './delay.js';
import {AbortError, CircuitOpenError, HTTPError, isRetryableError} from './errors.js';
import {requestClassOf} from './holds.js';
import {retryDelayMs} from './schedule.js';

/** @typedef {import('./http.js').Answer} Answer */
/** @typedef {import('./http.js').RequestSpec} RequestSpec */
/** @typedef {import('./http.js').Transport} Transport */
/** @typedef {import('./breaker.js').CircuitBreaker} CircuitBreaker */
/** @typedef {import('./holds.js').RequestHolds} RequestHolds */
/** @typedef {import('./schedule.js').RetryPolicy} RetryPolicy */

export class Retryer {
	#transport;
	#breaker;
	#holds;
	#retry;
	#random;
	#closeSignal;
	#onAttempt;
	#onAnswer;

	/**
	 * @param {object} options
	 * @param {Transport} options.transport
	 * @param {CircuitBreaker} options.breaker
	 * @param {RequestHolds} options.holds
	 * @param {RetryPolicy} options.retry
	 * @param {() => number} options.random
	 * @param {AbortSignal} options.closeSignal aborts every call when the client closes
	 * @param {() => void} options.onAttempt an attempt ended (the breaker may have changed)
	 * @param {() => void} options.onAnswer an attempt got a healthy answer
	 */
	constructor({transport, breaker, holds, retry, random, closeSignal, onAttempt, onAnswer}) {
		this.#transport = transport;
		this.#breaker = breaker;
		this.#holds = holds;
		this.#retry = retry;
		this.#random = random;
		this.#closeSignal = closeSignal;
		this.#onAttempt = onAttempt;
		this.#onAnswer = onAnswer;
	}

	/**
	 * Send a request until it gets an answer, a final error, or runs out of attempts.
	 * @param {RequestSpec} request
	 * @param {AbortSignal | undefined} signal
	 * @returns {Promise<Answer>}
	 */
	async send(request, signal) {
		if (this.#closeSignal.aborted) {
			throw new AbortError('The client is closed');
		}

		const requestClass = requestClassOf(request);
		const linked = linkSignals([signal, this.#closeSignal]);
		try {
			for (let attempt = 1; ; attempt += 1) {
				const holdMs = this.#holds.until(requestClass) - Date.now();
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
					this.#onAnswer();
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

					this.#holds.learn(error, requestClass);
					if (!isRetryableError(error) || attempt >= this.#retry.maxAttempts) {
						throw error;
					}

					// A Retry-After is waited out here and its jitter through the hold at the top of the loop.
					const retryAfterMs = error instanceof HTTPError ? error.retryAfterMs : null;
					await delay(retryDelayMs(attempt, retryAfterMs, this.#retry, this.#random), {signal: linked.signal});
				} finally {
					this.#onAttempt();
				}
			}
		} finally {
			linked.dispose();
		}
	}
}
