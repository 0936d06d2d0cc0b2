/** When to poll next: steady intervals with the server's hint, and retry delays after failures. */

import {fullJitterDelayMs, jitterDelayMs} from './backoff.js';
import {clampDelayMs} from './delay.js';

/** Statuses after which a job never changes again. */
export const TERMINAL_STATUSES = Object.freeze(['succeeded', 'failed', 'cancelled']);

/**
 * @param {string | null | undefined} status
 * @returns {boolean}
 */
export function isTerminalStatus(status) {
	return TERMINAL_STATUSES.includes(/** @type {string} */ (status));
}

/**
 * @typedef {object} SteadyPolicy
 * @property {{queued: number, running: number}} intervalMs
 * @property {number} minIntervalMs
 * @property {number} maxIntervalMs
 * @property {number} hiddenIntervalMs
 * @property {number} jitterRatio
 */

/**
 * The interval a job in `status` wants before jitter: the server's hint when it sent one
 * (clamped to [minIntervalMs, maxIntervalMs] so a bad hint can neither hammer nor stall us),
 * otherwise the configured interval for that status.
 * @param {string | null | undefined} status
 * @param {number | null | undefined} hintMs
 * @param {SteadyPolicy} policy
 * @returns {number}
 */
export function baseIntervalMs(status, hintMs, policy) {
	if (typeof hintMs === 'number' && Number.isFinite(hintMs) && hintMs >= 0) {
		return Math.min(Math.max(hintMs, policy.minIntervalMs), policy.maxIntervalMs);
	}

	return status === 'running' ? policy.intervalMs.running : policy.intervalMs.queued;
}

/**
 * Delay before the next steady poll.
 * Hidden tabs poll at least every hiddenIntervalMs (slower, never stopped). In long-poll mode the server
 * paces us, so the next request only waits until minIntervalMs has passed since the previous one started.
 * @param {{intervalMs: number, hidden: boolean, longPoll: boolean, elapsedMs: number}} input
 * @param {SteadyPolicy} policy
 * @param {() => number} [random]
 * @returns {number}
 */
export function steadyDelayMs({intervalMs, hidden, longPoll, elapsedMs}, policy, random = Math.random) {
	if (hidden) {
		return clampDelayMs(jitterDelayMs(Math.max(intervalMs, policy.hiddenIntervalMs), policy.jitterRatio, random));
	}

	if (longPoll) {
		return clampDelayMs(policy.minIntervalMs - elapsedMs);
	}

	return clampDelayMs(jitterDelayMs(intervalMs, policy.jitterRatio, random));
}

/**
 * @typedef {object} RetryPolicy
 * @property {number} maxAttempts
 * @property {number} baseDelayMs
 * @property {number} maxDelayMs
 * @property {number} maxRetryAfterMs
 */

/**
 * Delay before retrying after the `attempt`-th consecutive failure (1-based).
 * A server Retry-After wins (capped at maxRetryAfterMs); otherwise full-jitter backoff.
 * @param {number} attempt
 * @param {number | null | undefined} retryAfterMs
 * @param {RetryPolicy} policy
 * @param {() => number} [random]
 * @returns {number}
 */
export function retryDelayMs(attempt, retryAfterMs, policy, random = Math.random) {
	if (typeof retryAfterMs === 'number' && retryAfterMs >= 0) {
		return clampDelayMs(Math.min(retryAfterMs, policy.maxRetryAfterMs));
	}

	return clampDelayMs(fullJitterDelayMs(attempt - 1, policy, random));
}
