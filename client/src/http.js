/**
 * The one place that builds URLs and turns fetch into typed outcomes: an answer, or an HTTPError /
 * ProblemError / NetworkError / TimeoutError. Every request carries the bearer token and its own timeout.
 */

import {parseRetryAfterMs} from './backoff.js';
import {abortReason, linkSignals, setSafeTimeout} from './delay.js';
import {HTTPError, NetworkError, ProblemError, TimeoutError} from './errors.js';

/**
 * @typedef {object} Answer
 * @property {number} status
 * @property {Headers} headers
 * @property {any} body parsed JSON; null for 304 and empty bodies
 * @property {string | null} etag
 * @property {number | null} retryAfterMs
 */

/**
 * @typedef {object} RequestSpec
 * @property {'GET' | 'POST'} method
 * @property {string} path starts with a slash; already encoded
 * @property {Record<string, string | number | undefined | null>} [query]
 * @property {unknown} [body] sent as JSON
 * @property {Record<string, string>} [headers]
 * @property {AbortSignal} [signal]
 * @property {number} [timeoutMs] overrides the transport's default
 */

/**
 * @param {string} contentType
 * @param {unknown} body
 * @returns {body is import('./errors.js').Problem}
 */
function isProblem(contentType, body) {
	if (typeof body !== 'object' || body === null || Array.isArray(body)) {
		return false;
	}

	return /application\/problem\+json/i.test(contentType) || ('title' in body && 'status' in body);
}

/**
 * The path of one job's resource; the id is encoded, so an odd id cannot reach another route.
 * @param {string} id
 * @returns {string}
 */
export function jobPath(id) {
	return `/api/ai/jobs/${encodeURIComponent(id)}`;
}

export class Transport {
	#baseUrl;
	#fetch;
	#getToken;
	#requestTimeoutMs;

	/**
	 * @param {object} options
	 * @param {string} options.baseUrl without trailing slash
	 * @param {typeof globalThis.fetch} options.fetch
	 * @param {() => string | Promise<string>} options.getToken
	 * @param {number} options.requestTimeoutMs Infinity disables the timeout
	 */
	constructor({baseUrl, fetch, getToken, requestTimeoutMs}) {
		this.#baseUrl = baseUrl;
		this.#fetch = fetch;
		this.#getToken = getToken;
		this.#requestTimeoutMs = requestTimeoutMs;
	}

	/**
	 * @param {string} path
	 * @param {RequestSpec['query']} [query] null and undefined values are left out
	 * @returns {string}
	 */
	url(path, query = {}) {
		const url = new URL(`${this.#baseUrl}${path}`);
		for (const [key, value] of Object.entries(query)) {
			if (value !== undefined && value !== null) {
				url.searchParams.set(key, String(value));
			}
		}

		return url.toString();
	}

	/**
	 * Send one request; no retries here (callers own the retry policy).
	 * @param {RequestSpec} spec
	 * @returns {Promise<Answer>}
	 */
	async request({method, path, query, body, headers = {}, signal, timeoutMs = this.#requestTimeoutMs}) {
		const url = this.url(path, query);
		const token = await this.#getToken();
		const timeout = new AbortController();
		let timedOut = false;
		const timer = Number.isFinite(timeoutMs)
			? setSafeTimeout(() => {
				timedOut = true;
				timeout.abort();
			}, timeoutMs)
			: undefined;
		const linked = linkSignals([signal, timeout.signal]);
		// Cancelled from outside (close, pause): drop the timer now, not when fetch gets round to rejecting.
		const stopTimer = () => clearTimeout(timer);
		signal?.addEventListener('abort', stopTimer, {once: true});

		/** @param {unknown} error */
		const classify = (error) => {
			if (timedOut) {
				return new TimeoutError(`Request timed out after ${timeoutMs} ms: ${method} ${url}`, timeoutMs);
			}

			if (signal?.aborted) {
				return abortReason(signal);
			}

			return new NetworkError(method, url, error);
		};

		try {
			/** @type {Response} */
			let response;
			let text = '';
			try {
				const fetchImpl = this.#fetch;
				response = await fetchImpl(url, {
					method,
					headers: {
						accept: 'application/json, application/problem+json',
						authorization: `Bearer ${token}`,
						...(body === undefined ? {} : {'content-type': 'application/json'}),
						...headers,
					},
					body: body === undefined ? undefined : JSON.stringify(body),
					signal: linked.signal,
				});
				if (response.status !== 304 && response.status !== 204) {
					text = await response.text();
				}
			} catch (error) {
				throw classify(error);
			}

			const contentType = response.headers.get('content-type') ?? '';
			const retryAfterMs = parseRetryAfterMs(response.headers.get('retry-after'));
			/** @type {unknown} */
			let parsed = null;
			let parseFailed = false;
			if (text !== '') {
				try {
					parsed = JSON.parse(text);
				} catch {
					parsed = text;
					parseFailed = true;
				}
			}

			const init = {status: response.status, method, url, headers: response.headers, body: parsed, retryAfterMs};
			if (!response.ok && response.status !== 304) {
				throw isProblem(contentType, parsed) ? new ProblemError({...init, problem: parsed}) : new HTTPError(init);
			}

			if (response.status !== 304 && response.status !== 204 && (parseFailed || typeof parsed !== 'object' || parsed === null)) {
				throw new HTTPError({...init, message: `Expected a JSON object from ${method} ${url} (status ${response.status})`});
			}

			return {status: response.status, headers: response.headers, body: parsed, etag: response.headers.get('etag'), retryAfterMs};
		} finally {
			clearTimeout(timer);
			signal?.removeEventListener('abort', stopTimer);
			linked.dispose();
		}
	}
}
