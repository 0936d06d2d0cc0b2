import assert from 'node:assert/strict';
import test from 'node:test';
import {AbsoluteTimer, delay, linkSignals} from '../src/delay.js';
import {clampDelayMs, fullJitterDelayMs, jitterDelayMs, MAX_TIMER_MS, parseRetryAfterMs} from '../src/index.js';
import {percentile, RingBuffer, summarize} from '../src/poll-log.js';
import {baseIntervalMs, retryDelayMs, steadyDelayMs} from '../src/schedule.js';

const RETRY = {maxAttempts: 10, baseDelayMs: 100, maxDelayMs: 5000, maxRetryAfterMs: 60_000};
const POLICY = {intervalMs: {queued: 2000, running: 1000}, minIntervalMs: 250, maxIntervalMs: 60_000, hiddenIntervalMs: 30_000, jitterRatio: 0.1};

test('full jitter draws from [0, min(cap, base * 2^n))', () => {
	const almostOne = () => 0.999_999;
	assert.equal(fullJitterDelayMs(0, RETRY, () => 0), 0);
	assert.equal(fullJitterDelayMs(0, RETRY, almostOne), 99);
	assert.equal(fullJitterDelayMs(3, RETRY, almostOne), 799);
	assert.equal(fullJitterDelayMs(10, RETRY, almostOne), 4999, 'capped at maxDelayMs');
	assert.equal(fullJitterDelayMs(5000, RETRY, almostOne), 4999, 'huge attempts do not overflow');
	assert.equal(fullJitterDelayMs(3, {baseDelayMs: 0, maxDelayMs: 10}, almostOne), 0);
});

test('full jitter spreads retries over the whole window', () => {
	const samples = Array.from({length: 2000}, () => fullJitterDelayMs(4, RETRY));
	assert.ok(samples.every((sample) => sample >= 0 && sample < 1600));
	assert.ok(Math.min(...samples) < 200, 'some retries come early');
	assert.ok(Math.max(...samples) > 1400, 'some retries come late');
});

test('steady jitter stays within ±jitterRatio', () => {
	assert.equal(jitterDelayMs(1000, 0.1, () => 0), 900);
	assert.equal(jitterDelayMs(1000, 0.1, () => 0.5), 1000);
	assert.ok(jitterDelayMs(1000, 0.1, () => 0.999_999) <= 1100);
	for (let index = 0; index < 500; index += 1) {
		const delayMs = steadyDelayMs({intervalMs: 1000, hidden: false, longPoll: false, elapsedMs: 0}, POLICY);
		assert.ok(delayMs >= 900 && delayMs <= 1100);
	}
});

test('Retry-After parses delay-seconds and HTTP dates, and rejects garbage', () => {
	const now = Date.parse('2026-01-01T00:00:00Z');
	assert.equal(parseRetryAfterMs('120', now), 120_000);
	assert.equal(parseRetryAfterMs(' 0 ', now), 0);
	assert.equal(parseRetryAfterMs('Thu, 01 Jan 2026 00:00:30 GMT', now), 30_000);
	assert.equal(parseRetryAfterMs('Wed, 31 Dec 2025 23:00:00 GMT', now), 0, 'a past date means now');
	assert.equal(parseRetryAfterMs('soon', now), null);
	assert.equal(parseRetryAfterMs('', now), null);
	assert.equal(parseRetryAfterMs(null, now), null);
	assert.equal(parseRetryAfterMs(undefined), null);
});

test('every delay is clamped to what setTimeout can hold', () => {
	assert.equal(MAX_TIMER_MS, 2_147_483_647);
	assert.equal(clampDelayMs(2 ** 40), MAX_TIMER_MS);
	assert.equal(clampDelayMs(Number.POSITIVE_INFINITY), MAX_TIMER_MS);
	assert.equal(clampDelayMs(-5), 0);
	assert.equal(clampDelayMs(Number.NaN), 0);
	assert.equal(clampDelayMs(1.2), 2);
	assert.equal(retryDelayMs(1, 1e15, {...RETRY, maxRetryAfterMs: Number.MAX_VALUE}), MAX_TIMER_MS);
	assert.equal(steadyDelayMs({intervalMs: 1e15, hidden: false, longPoll: false, elapsedMs: 0}, POLICY), MAX_TIMER_MS);
});

test('the server hint wins within [minIntervalMs, maxIntervalMs]; otherwise the status interval applies', () => {
	assert.equal(baseIntervalMs('running', 5000, POLICY), 5000);
	assert.equal(baseIntervalMs('running', 10, POLICY), 250);
	assert.equal(baseIntervalMs('running', 1e12, POLICY), 60_000);
	assert.equal(baseIntervalMs('running', null, POLICY), 1000);
	assert.equal(baseIntervalMs('queued', undefined, POLICY), 2000);
	assert.equal(baseIntervalMs(null, Number.NaN, POLICY), 2000);
});

test('hidden tabs wait at least hiddenIntervalMs; long polls only keep minIntervalMs between starts', () => {
	const middle = () => 0.5;
	assert.equal(steadyDelayMs({intervalMs: 1000, hidden: true, longPoll: false, elapsedMs: 0}, POLICY, middle), 30_000);
	assert.equal(steadyDelayMs({intervalMs: 90_000, hidden: true, longPoll: true, elapsedMs: 0}, POLICY, middle), 90_000);
	assert.equal(steadyDelayMs({intervalMs: 1000, hidden: false, longPoll: true, elapsedMs: 100}, POLICY), 150);
	assert.equal(steadyDelayMs({intervalMs: 1000, hidden: false, longPoll: true, elapsedMs: 25_000}, POLICY), 0);
});

test('a retry waits Retry-After when the server sent it, capped at maxRetryAfterMs', () => {
	assert.equal(retryDelayMs(1, 2000, RETRY), 2000);
	assert.equal(retryDelayMs(1, 3_600_000, RETRY), 60_000);
	assert.equal(retryDelayMs(3, null, RETRY, () => 0.5), 200);
});

test('delay resolves after its time and rejects at once when aborted, clearing its timer', async () => {
	await delay(5);
	const controller = new AbortController();
	const pending = delay(60_000, {signal: controller.signal});
	controller.abort(new Error('stop'));
	await assert.rejects(pending, {message: 'stop'});
	await assert.rejects(delay(5, {signal: AbortSignal.abort()}), {name: 'AbortError'});
});

test('linked signals abort with the first reason and detach their listeners', () => {
	const a = new AbortController();
	const b = new AbortController();
	const linked = linkSignals([a.signal, undefined, b.signal]);
	b.abort('b first');
	assert.equal(linked.signal.reason, 'b first');
	linked.dispose();

	const already = linkSignals([AbortSignal.abort('done')]);
	assert.equal(already.signal.reason, 'done');
});

test('an absolute timer far beyond 2^31-1 ms does not fire early; a near one fires', async () => {
	let fired = 0;
	const far = new AbsoluteTimer(() => {
		fired += 1;
	});
	far.start(Date.now() + (2 ** 40));
	await delay(20);
	far.clear();
	assert.equal(fired, 0);

	let now = 0;
	const stepping = new AbsoluteTimer(() => {
		fired += 1;
	}, () => now);
	stepping.start(10);
	await delay(20);
	assert.equal(fired, 0, 're-armed because the clock said it was early');
	now = 10;
	await delay(20);
	stepping.clear();
	assert.ok(fired >= 1);
});

test('the poll log keeps only the newest entries and summarizes them', () => {
	const ring = new RingBuffer(3);
	for (const value of [1, 2, 3, 4, 5]) {
		ring.push(value);
	}

	assert.deepEqual(ring.toArray(), [3, 4, 5]);
	assert.equal(ring.size, 3);
	assert.equal(percentile([], 50), null);
	assert.equal(percentile([5, 1, 3, 2, 4], 50), 3);
	assert.equal(percentile([5, 1, 3, 2, 4], 95), 5);
	assert.deepEqual(summarize([]), {successRate: null, p50LatencyMs: null, p95LatencyMs: null});
	const entry = {at: 0, kind: 'status', ids: ['a'], httpStatus: 200, error: null};
	assert.deepEqual(summarize([
		{...entry, outcome: 'updated', latencyMs: 10},
		{...entry, outcome: 'not-modified', latencyMs: 30},
		{...entry, outcome: 'error', latencyMs: 1000},
		{...entry, outcome: 'updated', latencyMs: 20},
	]), {successRate: 0.75, p50LatencyMs: 20, p95LatencyMs: 30});
});
