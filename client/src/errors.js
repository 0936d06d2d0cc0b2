/**
 * One error class per failure concept, each with `name` set so it survives `structuredClone`,
 * logging and `instanceof`-less checks (`error.name === 'TimeoutError'`).
 */

/** Base class of every error this client throws. */
export class JobsClientError extends Error {
	/**
	 * @param {string} message
	 * @param {{cause?: unknown}} [options]
	 */
	constructor(message, options) {
		super(message, options);
		this.name = 'JobsClientError';
	}
}

/**
 * @typedef {object} HTTPErrorInit
 * @property {number} status
 * @property {string} method
 * @property {string} url
 * @property {Headers} headers
 * @property {unknown} body
 * @property {number | null} retryAfterMs
 * @property {string} [message]
 */

/** The server answered with a status outside 2xx/304, or with a body that is not the JSON it promised. */
export class HTTPError extends JobsClientError {
	/** @param {HTTPErrorInit} init */
	constructor({status, method, url, headers, body, retryAfterMs, message}) {
		super(message ?? `Request failed with status ${status}: ${method} ${url}`);
		this.name = 'HTTPError';
		/** HTTP status code. */
		this.status = status;
		this.method = method;
		this.url = url;
		/** Response headers. */
		this.headers = headers;
		/** Parsed JSON body, the raw text when it was not JSON, or null when empty. */
		this.body = body;
		/** The server's Retry-After in milliseconds, or null when absent or unparsable. */
		this.retryAfterMs = retryAfterMs;
	}
}

/**
 * @typedef {object} Problem
 * @property {string} [type]
 * @property {string} [title]
 * @property {number} [status]
 * @property {string} [detail]
 * @property {string} [instance]
 * @property {unknown} [errors]
 */

/** The server answered with an RFC 9457 `application/problem+json` body; `problem` holds it. */
export class ProblemError extends HTTPError {
	/** @param {HTTPErrorInit & {problem: Problem}} init */
	constructor(init) {
		const {problem} = init;
		const summary = [problem.title, problem.detail].filter(Boolean).join(': ');
		super({...init, message: `${summary || 'Request failed'} (${init.status} ${init.method} ${init.url})`});
		this.name = 'ProblemError';
		/** The problem document as sent by the server. */
		this.problem = problem;
		this.type = problem.type ?? 'about:blank';
		this.title = problem.title ?? '';
		this.detail = problem.detail ?? '';
		/** Field errors, when the server sent any (validation problems). */
		this.errors = problem.errors;
	}
}

/** The request got no HTTP answer at all: DNS failure, refused or reset connection, offline. */
export class NetworkError extends JobsClientError {
	/**
	 * @param {string} method
	 * @param {string} url
	 * @param {unknown} cause
	 */
	constructor(method, url, cause) {
		super(`Network request failed: ${method} ${url}`, {cause});
		this.name = 'NetworkError';
		this.method = method;
		this.url = url;
	}
}

/** A single request took longer than its timeout and was aborted. */
export class TimeoutError extends JobsClientError {
	/**
	 * @param {string} message
	 * @param {number} timeoutMs
	 */
	constructor(message, timeoutMs) {
		super(message);
		this.name = 'TimeoutError';
		this.timeoutMs = timeoutMs;
	}
}

/** A watched job did not reach a terminal status before its total deadline. */
export class DeadlineError extends TimeoutError {
	/**
	 * @param {string} jobId
	 * @param {number} deadlineAt epoch milliseconds
	 * @param {number} timeoutMs the deadline length the watch started with (NaN when unknown)
	 */
	constructor(jobId, deadlineAt, timeoutMs) {
		super(`Job ${jobId} did not finish before its deadline (${new Date(deadlineAt).toISOString()})`, timeoutMs);
		this.name = 'DeadlineError';
		this.jobId = jobId;
		this.deadlineAt = deadlineAt;
	}
}

/** The circuit breaker is open: the server failed repeatedly, so requests are refused locally until `retryAt`. */
export class CircuitOpenError extends JobsClientError {
	/** @param {number} retryAt epoch milliseconds (Infinity while a half-open probe is in flight) */
	constructor(retryAt) {
		super(Number.isFinite(retryAt)
			? `Circuit open: requests refused until ${new Date(retryAt).toISOString()}`
			: 'Circuit half-open: a probe request is in flight');
		this.name = 'CircuitOpenError';
		this.retryAt = retryAt;
	}
}

/** The operation was cancelled by this client: `unwatch()`, `close()`. */
export class AbortError extends JobsClientError {
	/** @param {string} message */
	constructor(message) {
		super(message);
		this.name = 'AbortError';
	}
}

/**
 * Whether repeating the same request later may succeed: no answer, a timeout, 408, 429 or 5xx.
 * Every other 4xx is final.
 * @param {unknown} error
 * @returns {boolean}
 */
export function isRetryableError(error) {
	if (error instanceof DeadlineError) {
		return false;
	}

	if (error instanceof NetworkError || error instanceof TimeoutError) {
		return true;
	}

	if (error instanceof HTTPError) {
		return error.status === 408 || error.status === 429 || error.status >= 500;
	}

	return false;
}
