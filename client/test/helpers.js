/** Shared test fixtures: a fake server per test, clients wired to it, and browser-like fakes for Node. */

import {createJobsClient} from '../src/index.js';
import {startFakeServer} from './fake-server.js';

/** Options that keep tests fast and isolated from the Node globals. */
export const FAST = Object.freeze({
	intervalMs: {queued: 20, running: 20},
	minIntervalMs: 5,
	maxIntervalMs: 200,
	hiddenIntervalMs: 400,
	requestTimeoutMs: 10_000,
	retry: {maxAttempts: 5, baseDelayMs: 5, maxDelayMs: 40, maxRetryAfterMs: 2000},
	breaker: {failureThreshold: 50, coolDownMs: 100},
	batch: false,
	storage: null,
	document: null,
	window: null,
	locks: null,
	BroadcastChannel: null,
});

/**
 * Start a fake server for this test and return a client factory; everything is closed after the test.
 * @param {import('node:test').TestContext} t
 * @param {object} [serverOptions]
 */
export async function setup(t, serverOptions) {
	const server = await startFakeServer(serverOptions);
	/** @type {Array<import('../src/index.js').JobsClient>} */
	const clients = [];
	t.after(async () => {
		for (const client of clients) {
			client.close();
		}

		await server.close();
	});

	/** @param {object} [overrides] */
	const makeClient = (overrides = {}) => {
		const client = createJobsClient({baseUrl: server.url, apiKey: server.apiKey, ...FAST, ...overrides});
		clients.push(client);
		return client;
	};

	return {server, makeClient};
}

/**
 * The detail of the next `type` event that satisfies `accept`.
 * @param {EventTarget} target
 * @param {string} type
 * @param {(detail: any) => boolean} [accept]
 * @param {number} [timeoutMs]
 */
export function nextEvent(target, type, accept = () => true, timeoutMs = 5000) {
	return new Promise((resolve, reject) => {
		const timer = setTimeout(() => {
			target.removeEventListener(type, listener);
			reject(new Error(`no "${type}" event within ${timeoutMs} ms`));
		}, timeoutMs);
		const listener = (/** @type {any} */ event) => {
			if (accept(event.detail)) {
				clearTimeout(timer);
				target.removeEventListener(type, listener);
				resolve(event.detail);
			}
		};

		target.addEventListener(type, listener);
	});
}

/**
 * Poll `condition` until it is truthy.
 * @param {() => unknown} condition
 * @param {string} [what]
 * @param {number} [timeoutMs]
 */
export async function eventually(condition, what = 'condition', timeoutMs = 5000) {
	const deadline = Date.now() + timeoutMs;
	while (!condition()) {
		if (Date.now() > deadline) {
			throw new Error(`${what} not reached within ${timeoutMs} ms`);
		}

		await sleep(5);
	}
}

/** @param {number} ms */
export function sleep(ms) {
	return new Promise((resolve) => {
		setTimeout(resolve, ms);
	});
}

/** Collect the details of every `type` event. */
export function record(target, type) {
	/** @type {any[]} */
	const details = [];
	target.addEventListener(type, (/** @type {any} */ event) => details.push(event.detail));
	return details;
}

/** A Storage-like map, shared between "page loads" in a test. */
export class MemoryStorage {
	/** @type {Map<string, string>} */
	map = new Map();
	getItem(key) {
		return this.map.has(key) ? this.map.get(key) : null;
	}

	setItem(key, value) {
		this.map.set(key, String(value));
	}

	removeItem(key) {
		this.map.delete(key);
	}
}

/** A document whose visibility the test controls. */
export class FakeDocument extends EventTarget {
	visibilityState = 'visible';

	/** @param {boolean} hidden */
	setHidden(hidden) {
		this.visibilityState = hidden ? 'hidden' : 'visible';
		this.dispatchEvent(new Event('visibilitychange'));
	}
}

/** A window that can go offline and online. */
export class FakeWindow extends EventTarget {
	goOffline() {
		this.dispatchEvent(new Event('offline'));
	}

	goOnline() {
		this.dispatchEvent(new Event('online'));
	}
}

function abortError() {
	return new DOMException('The lock request was aborted', 'AbortError');
}

/**
 * Web Locks (exclusive mode only) for one simulated browser: `ifAvailable`, `steal`, `signal`, and release
 * when the callback's promise settles.
 */
export class FakeLockManager {
	/** @type {Map<string, {reject: (error: unknown) => void}>} */
	#held = new Map();
	/** @type {Map<string, Array<{grant: () => void}>>} */
	#queues = new Map();

	/** Names currently held. */
	held() {
		return [...this.#held.keys()];
	}

	request(name, options, callback) {
		return new Promise((resolve, reject) => {
			const holder = {reject};
			const grant = () => {
				this.#held.set(name, holder);
				Promise.resolve()
					.then(() => callback({name, mode: 'exclusive'}))
					.then(resolve, reject)
					.finally(() => {
						if (this.#held.get(name) === holder) {
							this.#held.delete(name);
							this.#grantNext(name);
						}
					});
			};

			if (options.steal) {
				const current = this.#held.get(name);
				if (current) {
					this.#held.delete(name);
					current.reject(abortError());
				}

				grant();
				return;
			}

			if (!this.#held.has(name) && (this.#queues.get(name)?.length ?? 0) === 0) {
				grant();
				return;
			}

			if (options.ifAvailable) {
				Promise.resolve().then(() => callback(null)).then(resolve, reject);
				return;
			}

			const queue = this.#queues.get(name) ?? [];
			this.#queues.set(name, queue);
			const entry = {grant};
			queue.push(entry);
			options.signal?.addEventListener('abort', () => {
				const index = queue.indexOf(entry);
				if (index !== -1) {
					queue.splice(index, 1);
					reject(options.signal.reason ?? abortError());
				}
			}, {once: true});
		});
	}

	#grantNext(name) {
		const next = this.#queues.get(name)?.shift();
		next?.grant();
	}
}

/**
 * One tab of a simulated browser that a test can freeze the way a hung or frozen page is: it sends no
 * request and hears no answer, sends and hears nothing on the channel, and what the lock manager tells
 * it (a grant, a stolen lock) waits. Thawing delivers what waited, in order. With `loseLocksSilently` a
 * stolen lock is never reported to this tab, as when a thawed page runs other tasks before the one that
 * reports the loss.
 */
export class FreezableTab {
	frozen = false;
	/** @type {Array<() => void>} */
	#pending = [];
	#locks;
	#loseLocksSilently;

	/**
	 * @param {FakeLockManager} locks the browser's lock manager, shared with the other tabs
	 * @param {{loseLocksSilently?: boolean}} [options]
	 */
	constructor(locks, {loseLocksSilently = false} = {}) {
		this.#locks = locks;
		this.#loseLocksSilently = loseLocksSilently;
	}

	freeze() {
		this.frozen = true;
	}

	thaw() {
		this.frozen = false;
		const pending = this.#pending;
		this.#pending = [];
		for (const task of pending) {
			task();
		}
	}

	/** Options for createJobsClient that route this tab's fetch, locks and channel through the switch. */
	options() {
		return {fetch: this.#fetch, locks: this.#lockManager(), BroadcastChannel: this.#channelClass()};
	}

	/** Run `task` now, or at thaw when frozen. */
	#later(task) {
		if (this.frozen) {
			this.#pending.push(task);
		} else {
			task();
		}
	}

	/** @param {AbortSignal | undefined} signal */
	#untilThawed(signal) {
		return new Promise((resolve, reject) => {
			this.#later(resolve);
			signal?.addEventListener('abort', () => reject(signal.reason), {once: true});
		});
	}

	#fetch = async (url, init) => {
		await this.#untilThawed(init?.signal);
		const response = await fetch(url, init);
		await this.#untilThawed(init?.signal);
		return response;
	};

	#lockManager() {
		return {
			request: (name, options, callback) => new Promise((resolve, reject) => {
				let granted = false;
				this.#locks.request(name, options, (lock) => new Promise((release) => {
					this.#later(() => {
						granted = lock !== null;
						release(callback(lock));
					});
				})).then((value) => this.#later(() => resolve(value)), (error) => {
					if (this.#loseLocksSilently && granted && error?.name === 'AbortError') {
						return;
					}

					this.#later(() => reject(error));
				});
			}),
		};
	}

	#channelClass() {
		const tab = this;
		return class FreezableChannel {
			onmessage = null;
			#inner;

			constructor(name) {
				this.#inner = new BroadcastChannel(name);
				this.#inner.onmessage = (event) => tab.#later(() => this.onmessage?.(event));
			}

			postMessage(message) {
				if (!tab.frozen) {
					this.#inner.postMessage(message);
				}
			}

			close() {
				this.#inner.close();
			}
		};
	}
}
