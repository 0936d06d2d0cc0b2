/** Randomised waits: full-jitter backoff after failures, small jitter on steady polls, Retry-After parsing. */

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
