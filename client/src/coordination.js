/**
 * One poller per job across tabs.
 *
 * A Web Lock per job elects the tab that polls (`ifAvailable` answers at once; a losing tab then queues a
 * plain request, which the browser grants when the holder releases it or its tab closes). The leader
 * shares what it learns on a BroadcastChannel. Another tab may steal the lock (claim) and a leader may
 * hand it back (stepDown); when to do either is decided in leadership.js. Without both APIs every tab
 * polls for itself.
 */

/**
 * @typedef {object} LockManagerLike
 * @property {(name: string, options: {ifAvailable?: boolean, steal?: boolean, signal?: AbortSignal}, callback: (lock: unknown) => unknown) => Promise<unknown>} request
 */

/**
 * @typedef {object} BroadcastChannelLike
 * @property {(message: unknown) => void} postMessage
 * @property {() => void} close
 * @property {((event: {data: unknown}) => void) | null} onmessage
 */

/** @typedef {new (name: string) => BroadcastChannelLike} BroadcastChannelConstructor */

/**
 * @typedef {object} ElectionHandlers
 * @property {() => void} onLeader this tab now polls the job
 * @property {() => void} onFollower another tab polls the job; updates arrive as messages
 */

/**
 * @param {unknown} error
 * @returns {boolean}
 */
function isAbortError(error) {
	return typeof error === 'object' && error !== null && /** @type {{name?: unknown}} */ (error).name === 'AbortError';
}

/**
 * A lock request through which this tab may hold leadership; `resolve` lets the lock go.
 * @typedef {{resolve: () => void}} Tenure
 */

/** Leadership of one job in one tab, from `start()` until `stop()`. */
export class Election {
	#locks;
	#name;
	#handlers;
	/** Aborts the queued (waiting) request. */
	#controller = new AbortController();
	/** @type {Tenure | null} the request through which this tab holds the lock now */
	#tenure = null;
	#stopped = false;
	/** @type {'leader' | 'follower' | null} */
	role = null;

	/**
	 * @param {LockManagerLike} locks
	 * @param {string} name
	 * @param {ElectionHandlers} handlers
	 */
	constructor(locks, name, handlers) {
		this.#locks = locks;
		this.#name = name;
		this.#handlers = handlers;
	}

	start() {
		this.#request({ifAvailable: true});
	}

	/** Take the lock from whichever tab holds it, even one that is frozen and will never let it go. */
	claim() {
		if (this.#stopped || this.role === 'leader') {
			return;
		}

		this.#controller.abort();
		this.#controller = new AbortController();
		this.#request({steal: true});
	}

	/**
	 * Hand the job to a newer leader: let the lock go, if this tab still holds it, and queue for it again.
	 * A tab that leads without a lock (the manager refused) keeps polling for itself.
	 */
	stepDown() {
		if (this.#stopped || this.role !== 'leader' || this.#tenure === null) {
			return;
		}

		this.#tenure.resolve();
		this.#tenure = null;
		this.#follow();
	}

	/** Give up leadership or stop waiting for it. */
	stop() {
		this.#stopped = true;
		this.#controller.abort();
		this.#tenure?.resolve();
		this.#tenure = null;
		this.role = null;
	}

	/** @param {{ifAvailable?: boolean, steal?: boolean, signal?: AbortSignal}} options */
	#request(options) {
		/** @type {Tenure} */
		const tenure = {resolve() {}};
		this.#locks.request(this.#name, options, (lock) => {
			if (this.#stopped) {
				return undefined;
			}

			if (!lock) {
				this.#follow();
				return undefined;
			}

			return new Promise((resolve) => {
				tenure.resolve = () => resolve(undefined);
				this.#tenure = tenure;
				this.role = 'leader';
				this.#handlers.onLeader();
			});
		}).catch((/** @type {unknown} */ error) => {
			if (this.#stopped) {
				return;
			}

			if (this.#tenure === tenure) {
				// Another tab stole the lock: follow, and queue up to take over when it leaves.
				tenure.resolve();
				this.#tenure = null;
				this.#follow();
				return;
			}

			if (isAbortError(error)) {
				// The queued request that claim() replaced.
				return;
			}

			if (this.#tenure === null) {
				// The lock manager refused (an opaque origin, for example): poll on our own rather than never.
				this.role = 'leader';
				this.#handlers.onLeader();
			}
		});
	}

	#follow() {
		this.role = 'follower';
		this.#handlers.onFollower();
		this.#request({signal: this.#controller.signal});
	}
}

/**
 * @typedef {object} CoordinatorOptions
 * @property {LockManagerLike | null} locks
 * @property {BroadcastChannelConstructor | null} BroadcastChannel
 * @property {string} namespace prefix of lock names and the channel name
 * @property {(message: any) => void} onMessage
 */

export class Coordinator {
	#locks;
	#namespace;
	/** @type {BroadcastChannelLike | null} */
	#channel = null;

	/** @param {CoordinatorOptions} options */
	constructor({locks, BroadcastChannel, namespace, onMessage}) {
		this.#namespace = namespace;
		if (locks && BroadcastChannel) {
			this.#locks = locks;
			this.#channel = new BroadcastChannel(`${namespace}:jobs`);
			this.#channel.onmessage = (event) => onMessage(event.data);
		} else {
			this.#locks = null;
		}
	}

	/** Whether tabs share polling; false means every tab polls for itself. */
	get enabled() {
		return this.#channel !== null;
	}

	/**
	 * Start electing a poller for one job. Without coordination this tab leads at once.
	 * @param {string} id
	 * @param {ElectionHandlers} handlers
	 * @returns {Election | null} null when coordination is off
	 */
	elect(id, handlers) {
		if (!this.#locks) {
			handlers.onLeader();
			return null;
		}

		const election = new Election(this.#locks, `${this.#namespace}:job:${id}`, handlers);
		election.start();
		return election;
	}

	/** @param {unknown} message */
	publish(message) {
		try {
			this.#channel?.postMessage(message);
		} catch {
			// A closed or uncloneable channel must not break polling; other tabs poll for themselves then.
		}
	}

	close() {
		if (this.#channel) {
			this.#channel.onmessage = null;
			this.#channel.close();
			this.#channel = null;
		}
	}
}
