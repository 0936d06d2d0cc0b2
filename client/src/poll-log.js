/** A bounded record of poll attempts and the health figures derived from it. */

/**
 * @typedef {object} PollLogEntry
 * @property {number} at epoch milliseconds when the request started
 * @property {'status' | 'batch' | 'job'} kind single status poll, batch poll, or the final full-job fetch
 * @property {string[]} ids jobs the request covered
 * @property {'updated' | 'not-modified' | 'error'} outcome
 * @property {number | null} httpStatus null when no HTTP answer arrived
 * @property {number} latencyMs
 * @property {string | null} error error name when the outcome is 'error'
 */

/**
 * Fixed-capacity FIFO that overwrites its oldest item.
 * @template T
 */
export class RingBuffer {
	/** @type {T[]} */
	#items = [];
	#start = 0;
	#capacity;

	/** @param {number} capacity */
	constructor(capacity) {
		this.#capacity = capacity;
	}

	/** @param {T} item */
	push(item) {
		if (this.#items.length < this.#capacity) {
			this.#items.push(item);
			return;
		}

		this.#items[this.#start] = item;
		this.#start = (this.#start + 1) % this.#capacity;
	}

	/** @returns {T[]} oldest first */
	toArray() {
		return [...this.#items.slice(this.#start), ...this.#items.slice(0, this.#start)];
	}

	get size() {
		return this.#items.length;
	}
}

/**
 * Nearest-rank percentile of unsorted values; null when there are none.
 * @param {number[]} values
 * @param {number} percent 0..100
 * @returns {number | null}
 */
export function percentile(values, percent) {
	if (values.length === 0) {
		return null;
	}

	const sorted = [...values].sort((a, b) => a - b);
	const rank = Math.max(1, Math.ceil((percent / 100) * sorted.length));
	return sorted[rank - 1];
}

/**
 * Success rate and latency percentiles over the logged attempts. Latencies count answered requests only,
 * so in long-poll mode they include the time the server held the request.
 * @param {PollLogEntry[]} entries
 * @returns {{successRate: number | null, p50LatencyMs: number | null, p95LatencyMs: number | null}}
 */
export function summarize(entries) {
	if (entries.length === 0) {
		return {successRate: null, p50LatencyMs: null, p95LatencyMs: null};
	}

	const answered = entries.filter((entry) => entry.outcome !== 'error');
	const latencies = answered.map((entry) => entry.latencyMs);
	return {
		successRate: answered.length / entries.length,
		p50LatencyMs: percentile(latencies, 50),
		p95LatencyMs: percentile(latencies, 95),
	};
}
