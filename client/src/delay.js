/**
 * Timers that cannot overflow and waits that can be cancelled.
 *
 * `setTimeout` stores its delay in a signed 32-bit integer: anything above 2^31-1 ms (about 24.8 days)
 * fires after ~1 ms instead. Every delay this client arms goes through `clampDelayMs`.
 */

/** Largest delay `setTimeout` honours, in milliseconds. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A delay that is safe to hand to `setTimeout`: NaN and negatives become 0, huge values become MAX_TIMER_MS.
 * @param {number} ms
 * @returns {number}
 */
export function clampDelayMs(ms) {
	if (!(ms > 0)) {
		return 0;
	}

	return Math.min(Math.ceil(ms), MAX_TIMER_MS);
}

/**
 * `setTimeout` with the delay clamped.
 * @param {() => void} callback
 * @param {number} ms
 * @returns {ReturnType<typeof setTimeout>}
 */
export function setSafeTimeout(callback, ms) {
	return setTimeout(callback, clampDelayMs(ms));
}

/** A timer that fires at an absolute time, however far away, by re-arming in steps of at most MAX_TIMER_MS. */
export class AbsoluteTimer {
	/** @type {ReturnType<typeof setTimeout> | undefined} */
	#handle;
	#callback;
	#now;

	/**
	 * @param {() => void} callback
	 * @param {() => number} [now]
	 */
	constructor(callback, now = Date.now) {
		this.#callback = callback;
		this.#now = now;
	}

	/** @param {number} dueAt epoch milliseconds */
	start(dueAt) {
		this.clear();
		const remaining = dueAt - this.#now();
		this.#handle = setSafeTimeout(() => {
			this.#handle = undefined;
			if (this.#now() < dueAt) {
				this.start(dueAt);
			} else {
				this.#callback();
			}
		}, remaining);
	}

	clear() {
		if (this.#handle !== undefined) {
			clearTimeout(this.#handle);
			this.#handle = undefined;
		}
	}
}

/**
 * The abort reason of a signal, or a generic AbortError when the runtime gave none.
 * @param {AbortSignal} signal
 * @returns {unknown}
 */
export function abortReason(signal) {
	return signal.reason ?? new DOMException('This operation was aborted', 'AbortError');
}

/**
 * Resolve after `ms`; reject with the signal's reason as soon as it aborts. The timer is always cleared.
 * @param {number} ms
 * @param {{signal?: AbortSignal}} [options]
 * @returns {Promise<void>}
 */
export function delay(ms, {signal} = {}) {
	return new Promise((resolve, reject) => {
		if (signal?.aborted) {
			reject(abortReason(signal));
			return;
		}

		const onAbort = () => {
			clearTimeout(handle);
			reject(abortReason(/** @type {AbortSignal} */ (signal)));
		};

		const handle = setSafeTimeout(() => {
			signal?.removeEventListener('abort', onAbort);
			resolve();
		}, ms);
		signal?.addEventListener('abort', onAbort, {once: true});
	});
}

/**
 * One signal that aborts when any of the given ones does (`AbortSignal.any` is too recent to rely on).
 * Call `dispose` when done so the listeners do not outlive the operation.
 * @param {Array<AbortSignal | undefined>} signals
 * @returns {{signal: AbortSignal, dispose: () => void}}
 */
export function linkSignals(signals) {
	const controller = new AbortController();
	/** @type {Array<() => void>} */
	const disposers = [];
	for (const signal of signals) {
		if (!signal) {
			continue;
		}

		if (signal.aborted) {
			controller.abort(signal.reason);
			break;
		}

		const onAbort = () => controller.abort(signal.reason);
		signal.addEventListener('abort', onAbort, {once: true});
		disposers.push(() => signal.removeEventListener('abort', onAbort));
	}

	return {
		signal: controller.signal,
		dispose() {
			for (const dispose of disposers) {
				dispose();
			}
		},
	};
}
