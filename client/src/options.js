/** Options of createJobsClient: defaults, and validation up front with a TypeError naming the bad option. */

import {defaultStorage} from './storage.js';

/** @typedef {import('./storage.js').StorageLike} StorageLike */
/** @typedef {import('./coordination.js').LockManagerLike} LockManagerLike */
/** @typedef {import('./coordination.js').BroadcastChannelConstructor} BroadcastChannelConstructor */

/**
 * @typedef {object} EventTargetLike
 * @property {(type: string, listener: () => void) => void} addEventListener
 * @property {(type: string, listener: () => void) => void} removeEventListener
 */

/** @typedef {EventTargetLike & {visibilityState?: string, hidden?: boolean}} DocumentLike */

/**
 * Options after defaults, as the client uses them.
 * @typedef {object} ResolvedOptions
 * @property {string} baseUrl without trailing slash
 * @property {() => string | Promise<string>} getToken
 * @property {typeof globalThis.fetch} fetch
 * @property {StorageLike | null} storage
 * @property {string} namespace
 * @property {{queued: number, running: number}} intervalMs
 * @property {number} minIntervalMs
 * @property {number} maxIntervalMs
 * @property {number} hiddenIntervalMs
 * @property {number} jitterRatio
 * @property {number} requestTimeoutMs
 * @property {number} deadlineMs
 * @property {{maxAttempts: number, baseDelayMs: number, maxDelayMs: number, maxRetryAfterMs: number}} retry
 * @property {{failureThreshold: number, coolDownMs: number}} breaker
 * @property {{minJobs: number, maxJobs: number, windowMs: number} | null} batch null when batching is off
 * @property {boolean} longPoll
 * @property {number} waitSeconds
 * @property {number} pollLogSize
 * @property {DocumentLike | null} document
 * @property {EventTargetLike | null} window
 * @property {LockManagerLike | null} locks
 * @property {BroadcastChannelConstructor | null} BroadcastChannel
 * @property {() => number} random
 */

/** Defaults of every option that has one; nested groups are merged key by key. */
export const DEFAULTS = Object.freeze({
	namespace: 'ai-jobs',
	intervalMs: Object.freeze({queued: 2000, running: 1000}),
	minIntervalMs: 250,
	maxIntervalMs: 60_000,
	hiddenIntervalMs: 30_000,
	jitterRatio: 0.1,
	requestTimeoutMs: 10_000,
	deadlineMs: 3_600_000,
	retry: Object.freeze({maxAttempts: 10, baseDelayMs: 500, maxDelayMs: 30_000, maxRetryAfterMs: 300_000}),
	breaker: Object.freeze({failureThreshold: 5, coolDownMs: 30_000}),
	batch: Object.freeze({minJobs: 2, maxJobs: 100, windowMs: 250}),
	longPoll: false,
	waitSeconds: 25,
	pollLogSize: 100,
});

const TOP_LEVEL = new Set([
	'baseUrl', 'apiKey', 'getToken', 'fetch', 'storage', 'namespace', 'intervalMs', 'minIntervalMs', 'maxIntervalMs',
	'hiddenIntervalMs', 'jitterRatio', 'requestTimeoutMs', 'deadlineMs', 'retry', 'breaker', 'batch', 'longPoll',
	'waitSeconds', 'pollLogSize', 'document', 'window', 'locks', 'BroadcastChannel', 'random',
]);

/** @param {unknown} value */
function describe(value) {
	if (typeof value === 'function') {
		return 'a function';
	}

	if (typeof value === 'string') {
		return JSON.stringify(value);
	}

	if (value === null || typeof value !== 'object') {
		return String(value);
	}

	return Array.isArray(value) ? 'an array' : 'an object';
}

/**
 * @param {string} name
 * @param {string} expectation
 * @param {unknown} value
 * @returns {never}
 */
function fail(name, expectation, value) {
	throw new TypeError(`createJobsClient: option "${name}" must be ${expectation}, got ${describe(value)}`);
}

/**
 * @param {string} name
 * @param {unknown} value
 * @param {{min?: number, max?: number, integer?: boolean, infinity?: boolean, exclusiveMin?: boolean}} [rules]
 * @returns {number}
 */
function number(name, value, {min = 0, max = Number.POSITIVE_INFINITY, integer = false, infinity = false, exclusiveMin = false} = {}) {
	const kind = integer ? 'an integer' : 'a number';
	const lower = exclusiveMin ? `> ${min}` : `>= ${min}`;
	const upper = Number.isFinite(max) ? ` and <= ${max}` : '';
	const expectation = `${kind} ${lower}${upper}${infinity ? ' (or Infinity)' : ''}`;
	if (typeof value !== 'number' || Number.isNaN(value)) {
		fail(name, expectation, value);
	}

	if (value === Number.POSITIVE_INFINITY) {
		return infinity ? value : fail(name, expectation, value);
	}

	if (!Number.isFinite(value) || (integer && !Number.isInteger(value)) || value < min || (exclusiveMin && value === min) || value > max) {
		fail(name, expectation, value);
	}

	return value;
}

/**
 * @param {string} name
 * @param {unknown} value
 * @returns {Record<string, unknown>}
 */
function plainObject(name, value) {
	if (typeof value !== 'object' || value === null || Array.isArray(value)) {
		fail(name, 'an object', value);
	}

	return /** @type {Record<string, unknown>} */ (value);
}

/**
 * Merge a nested option group over its defaults, refusing keys the group does not have.
 * @template {Record<string, number>} T
 * @param {string} name
 * @param {unknown} value
 * @param {T} defaults
 * @returns {Record<keyof T, unknown>}
 */
function group(name, value, defaults) {
	const given = value === undefined ? {} : plainObject(name, value);
	for (const key of Object.keys(given)) {
		if (!(key in defaults)) {
			throw new TypeError(`createJobsClient: unknown option "${name}.${key}" (known: ${Object.keys(defaults).join(', ')})`);
		}
	}

	/** @type {Record<string, unknown>} */
	const merged = {...defaults};
	for (const [key, entry] of Object.entries(given)) {
		if (entry !== undefined) {
			merged[key] = entry;
		}
	}

	return /** @type {Record<keyof T, unknown>} */ (merged);
}

/**
 * @param {string} name
 * @param {unknown} value
 * @param {string[]} methods
 * @returns {any}
 */
function nullableWith(name, value, methods) {
	if (value === null) {
		return null;
	}

	if ((typeof value !== 'object' && typeof value !== 'function')
		|| methods.some((method) => typeof /** @type {Record<string, unknown>} */ (value)[method] !== 'function')) {
		fail(name, `null or an object with ${methods.join(', ')}()`, value);
	}

	return value;
}

/** @returns {EventTargetLike | null} */
function defaultWindow() {
	const global = /** @type {any} */ (globalThis);
	return typeof global.addEventListener === 'function' && typeof global.removeEventListener === 'function' ? global : null;
}

/**
 * Apply defaults and validate. Throws a TypeError naming the first bad option.
 * @param {unknown} input
 * @returns {ResolvedOptions}
 */
export function resolveOptions(input) {
	const given = plainObject('options', input);
	for (const key of Object.keys(given)) {
		if (!TOP_LEVEL.has(key)) {
			throw new TypeError(`createJobsClient: unknown option "${key}"`);
		}
	}

	const global = /** @type {any} */ (globalThis);
	const options = /** @type {Record<string, any>} */ ({...given});

	if (typeof options.baseUrl !== 'string') {
		fail('baseUrl', 'an absolute http(s) URL string', options.baseUrl);
	}

	let parsedUrl;
	try {
		parsedUrl = new URL(options.baseUrl);
	} catch {
		fail('baseUrl', 'an absolute http(s) URL string', options.baseUrl);
	}

	if (parsedUrl.protocol !== 'http:' && parsedUrl.protocol !== 'https:') {
		fail('baseUrl', 'an absolute http(s) URL string', options.baseUrl);
	}

	if (options.apiKey !== undefined && options.getToken !== undefined) {
		throw new TypeError('createJobsClient: pass either option "apiKey" or option "getToken", not both');
	}

	/** @type {() => string | Promise<string>} */
	let getToken;
	if (options.getToken !== undefined) {
		if (typeof options.getToken !== 'function') {
			fail('getToken', 'a function returning the bearer token (or a promise of it)', options.getToken);
		}

		getToken = options.getToken;
	} else {
		if (typeof options.apiKey !== 'string' || options.apiKey === '') {
			fail('apiKey', 'a non-empty string (or pass getToken)', options.apiKey);
		}

		const {apiKey} = options;
		getToken = () => apiKey;
	}

	options.fetch ??= global.fetch;
	if (typeof options.fetch !== 'function') {
		fail('fetch', 'a fetch-compatible function (none found on globalThis)', options.fetch);
	}

	options.namespace ??= DEFAULTS.namespace;
	if (typeof options.namespace !== 'string' || options.namespace === '') {
		fail('namespace', 'a non-empty string', options.namespace);
	}

	const intervalMs = group('intervalMs', options.intervalMs, DEFAULTS.intervalMs);
	const retry = group('retry', options.retry, DEFAULTS.retry);
	const breaker = group('breaker', options.breaker, DEFAULTS.breaker);
	if (options.batch !== false && options.batch !== undefined && (typeof options.batch !== 'object' || options.batch === null)) {
		fail('batch', 'false or an object', options.batch);
	}

	const batch = options.batch === false ? null : group('batch', options.batch, DEFAULTS.batch);

	const minIntervalMs = number('minIntervalMs', options.minIntervalMs ?? DEFAULTS.minIntervalMs);
	const maxIntervalMs = number('maxIntervalMs', options.maxIntervalMs ?? DEFAULTS.maxIntervalMs, {min: minIntervalMs});

	options.longPoll ??= DEFAULTS.longPoll;
	if (typeof options.longPoll !== 'boolean') {
		fail('longPoll', 'a boolean', options.longPoll);
	}

	options.random ??= Math.random;
	if (typeof options.random !== 'function') {
		fail('random', 'a function returning a number in [0, 1)', options.random);
	}

	return {
		baseUrl: options.baseUrl.replace(/\/+$/, ''),
		getToken,
		fetch: options.fetch,
		storage: options.storage === undefined ? defaultStorage() : nullableWith('storage', options.storage, ['getItem', 'setItem', 'removeItem']),
		namespace: options.namespace,
		intervalMs: {
			queued: number('intervalMs.queued', intervalMs.queued),
			running: number('intervalMs.running', intervalMs.running),
		},
		minIntervalMs,
		maxIntervalMs,
		hiddenIntervalMs: number('hiddenIntervalMs', options.hiddenIntervalMs ?? DEFAULTS.hiddenIntervalMs),
		jitterRatio: number('jitterRatio', options.jitterRatio ?? DEFAULTS.jitterRatio, {max: 0.99}),
		requestTimeoutMs: number('requestTimeoutMs', options.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs, {exclusiveMin: true, infinity: true}),
		deadlineMs: number('deadlineMs', options.deadlineMs ?? DEFAULTS.deadlineMs, {exclusiveMin: true, infinity: true}),
		retry: {
			maxAttempts: number('retry.maxAttempts', retry.maxAttempts, {min: 1, integer: true, infinity: true}),
			baseDelayMs: number('retry.baseDelayMs', retry.baseDelayMs),
			maxDelayMs: number('retry.maxDelayMs', retry.maxDelayMs),
			maxRetryAfterMs: number('retry.maxRetryAfterMs', retry.maxRetryAfterMs),
		},
		breaker: {
			failureThreshold: number('breaker.failureThreshold', breaker.failureThreshold, {min: 1, integer: true}),
			coolDownMs: number('breaker.coolDownMs', breaker.coolDownMs),
		},
		batch: batch && {
			minJobs: number('batch.minJobs', batch.minJobs, {min: 2, integer: true}),
			maxJobs: number('batch.maxJobs', batch.maxJobs, {min: 1, max: 100, integer: true}),
			windowMs: number('batch.windowMs', batch.windowMs),
		},
		longPoll: options.longPoll,
		waitSeconds: number('waitSeconds', options.waitSeconds ?? DEFAULTS.waitSeconds, {min: 1, max: 30, integer: true}),
		pollLogSize: number('pollLogSize', options.pollLogSize ?? DEFAULTS.pollLogSize, {min: 1, integer: true}),
		document: options.document === undefined ? (global.document ?? null) : nullableWith('document', options.document, ['addEventListener', 'removeEventListener']),
		window: options.window === undefined ? defaultWindow() : nullableWith('window', options.window, ['addEventListener', 'removeEventListener']),
		locks: options.locks === undefined ? (global.navigator?.locks ?? null) : nullableWith('locks', options.locks, ['request']),
		BroadcastChannel: options.BroadcastChannel === undefined ? (global.BroadcastChannel ?? null) : nullableWithConstructor(options.BroadcastChannel),
		random: options.random,
	};
}

/**
 * @param {unknown} value
 * @returns {BroadcastChannelConstructor | null}
 */
function nullableWithConstructor(value) {
	if (value !== null && typeof value !== 'function') {
		fail('BroadcastChannel', 'null or a BroadcastChannel constructor', value);
	}

	return /** @type {BroadcastChannelConstructor | null} */ (value);
}
