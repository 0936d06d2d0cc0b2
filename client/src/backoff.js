/**
 * Randomised waits: full-jitter backoff after failures, small jitter on steady polls and on top of
 * Retry-After, Retry-After parsing.
 */

/** Share of a Retry-After wait that may be added on top of it, at most RETRY_AFTER_JITTER_MAX_MS. */
export const RETRY_AFTER_JITTER_RATIO = 0.1;

/** Most jitter ever added on top of a Retry-After wait: the header's own resolution (whole seconds). */
export const RETRY_AFTER_JITTER_MAX_MS = 1000;

/**
 * "Full jitter" backoff (AWS): a uniform draw in [0, min(maxDelayMs, baseDelayMs * 2^retryIndex)).
 * Spreading retries over the whole window is what keeps many clients from retrying in lockstep.
 * @param {number} retryIndex 0 for the first retry
 * @param {{baseDelayMs: number, maxDelayMs: number}} options
 * @param {() => number} [random] returns a number in [0, 1)
 * @returns {number}
 */
export function fullJitterDelayMs(retryIndex, {baseDelayMs, maxDelayMs}, random = Math.random) {
	const ceilingMs = Math.min(maxDelayMs, baseDelayMs * 2 ** Math.min(Math.max(retryIndex, 0), 52));
	return Math.floor(random() * ceilingMs);
}

/**
 * `ms` moved randomly by up to ±ratio of itself, so pollers started together drift apart.
 * @param {number} ms
 * @param {number} ratio for example 0.1 for ±10 %
 * @param {() => number} [random]
 * @returns {number}
 */
export function jitterDelayMs(ms, ratio, random = Math.random) {
	return ms * (1 + (ratio * ((2 * random()) - 1)));
}

/**
 * A random extra wait in [0, min(10 % of waitMs, 1 s)) to add on top of a Retry-After wait, never below it.
 * Clients refused together get the same Retry-After and would all come back at the same instant; the
 * spread desynchronises them. No client waits more than a tenth longer than the server asked, nor more
 * than one second longer: the header's own resolution, which the server's rounding already spends.
 * @param {number} waitMs the Retry-After wait, already capped
 * @param {() => number} [random] returns a number in [0, 1)
 * @returns {number}
 */
export function retryAfterJitterMs(waitMs, random = Math.random) {
	return random() * Math.min(Math.max(waitMs, 0) * RETRY_AFTER_JITTER_RATIO, RETRY_AFTER_JITTER_MAX_MS);
}

/**
 * Retry-After as milliseconds from now: either delay-seconds or an HTTP-date. Null when absent or unparsable.
 * @param {string | null | undefined} value
 * @param {number} [now] epoch milliseconds
 * @returns {number | null}
 */
export function parseRetryAfterMs(value, now = Date.now()) {
	if (value === null || value === undefined) {
		return null;
	}

	const trimmed = value.trim();
	if (trimmed === '') {
		return null;
	}

	if (/^\d+(\.\d+)?$/.test(trimmed)) {
		return Number(trimmed) * 1000;
	}

	const at = Date.parse(trimmed);
	if (Number.isNaN(at)) {
		return null;
	}

	return Math.max(0, at - now);
}
