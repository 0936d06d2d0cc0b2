/**
 * Retry-After holds, one per class of request.
 *
 * The server budgets polls, submits and every other call separately, and names the budget an answer
 * drew on in `RateLimit-Policy` ("poll", "submit", "default"). A 429 therefore holds back only the class
 * that was refused (and the class whose budget the server names, when that differs); a 503 says the
 * whole service is unavailable and holds back every class. Each hold lasts Retry-After plus a small
 * jitter, never less, so that clients refused together do not all come back at the same instant.
 */

import {retryAfterJitterMs} from './backoff.js';
import {clampDelayMs} from './delay.js';
import {HTTPError} from './errors.js';

/** @typedef {'poll' | 'submit' | 'default'} RequestClass */

/** The budgets the server keeps apart. */
export const REQUEST_CLASSES = /** @type {readonly RequestClass[]} */ (Object.freeze(['poll', 'submit', 'default']));

const STATUS_PATH = /^\/api\/ai\/jobs\/[^/]+\/status$/;

/**
 * The budget a request draws on, as the server counts it: status and batch polls, submits, the rest.
 * @param {{method: string, path: string}} request
 * @returns {RequestClass}
 */
export function requestClassOf({method, path}) {
	if ((method === 'GET' && STATUS_PATH.test(path)) || (method === 'POST' && path === '/api/ai/jobs/statuses')) {
		return 'poll';
	}

	return method === 'POST' && path === '/api/ai/jobs' ? 'submit' : 'default';
}

/**
 * The items of a structured-field list such as `"poll";r=0;t=55, "burst";r=3`: each name (quoted or a
 * token) with its parameters.
 * @param {string | null} value
 * @returns {Array<{name: string, params: Map<string, string>}>}
 */
function listItems(value) {
	if (!value) {
		return [];
	}

	return value.split(',').map((item) => {
		const [rawName, ...rawParams] = item.split(';').map((part) => part.trim());
		/** @type {Map<string, string>} */
		const params = new Map();
		for (const param of rawParams) {
			const [key, paramValue = ''] = param.split('=');
			params.set(key.trim(), paramValue.trim());
		}

		return {name: rawName.replace(/^"(.*)"$/, '$1'), params};
	}).filter((item) => item.name !== '');
}

/**
 * The budgets a 429 says are spent: the `RateLimit` items with nothing remaining, else every policy named
 * in `RateLimit-Policy`. Names the client does not know are left out.
 * @param {Headers | undefined} headers
 * @returns {RequestClass[]}
 */
export function refusedClasses(headers) {
	if (!headers || typeof headers.get !== 'function') {
		return [];
	}

	const spent = listItems(headers.get('ratelimit')).filter((item) => Number(item.params.get('r')) === 0);
	const named = spent.length > 0 ? spent : listItems(headers.get('ratelimit-policy'));
	return REQUEST_CLASSES.filter((requestClass) => named.some((item) => item.name === requestClass));
}

export class RequestHolds {
	/** @type {Map<RequestClass, number>} epoch ms before which requests of a class wait */
	#until = new Map();
	#maxRetryAfterMs;
	#random;

	/**
	 * @param {object} options
	 * @param {number} options.maxRetryAfterMs cap on a server Retry-After
	 * @param {() => number} options.random
	 */
	constructor({maxRetryAfterMs, random}) {
		this.#maxRetryAfterMs = maxRetryAfterMs;
		this.#random = random;
	}

	/**
	 * Earliest time a request of this class may be sent (0 when it is not held).
	 * @param {RequestClass} requestClass
	 * @returns {number}
	 */
	until(requestClass) {
		return this.#until.get(requestClass) ?? 0;
	}

	/**
	 * Learn from a failed request: a 429 holds its class (and the budget it names), a 503 holds them all,
	 * each for Retry-After plus jitter. Other failures and answers without Retry-After hold nothing.
	 * @param {unknown} error
	 * @param {RequestClass} requestClass the class of the request that failed
	 */
	learn(error, requestClass) {
		if (!(error instanceof HTTPError) || error.retryAfterMs === null || (error.status !== 429 && error.status !== 503)) {
			return;
		}

		const classes = error.status === 503 ? REQUEST_CLASSES : new Set([requestClass, ...refusedClasses(error.headers)]);
		const waitMs = Math.min(error.retryAfterMs, this.#maxRetryAfterMs);
		const until = Date.now() + clampDelayMs(waitMs + retryAfterJitterMs(waitMs, this.#random));
		for (const held of classes) {
			this.#until.set(held, Math.max(this.until(held), until));
		}
	}
}
