import assert from 'node:assert/strict';
import test from 'node:test';
import {RETRY_AFTER_JITTER_MAX_MS, retryAfterJitterMs} from '../src/backoff.js';
import {HTTPError} from '../src/index.js';
import {refusedClasses, requestClassOf, RequestHolds} from '../src/holds.js';
import {eventually, nextEvent, setup, sleep} from './helpers.js';

const SUBMITS = /^\/api\/ai\/jobs$/;

/** The headers the service sends with a 429 once a budget is spent (backend/api/limits.py). */
function spent(policy, quota) {
	return {'ratelimit-policy': `"${policy}";q=${quota};w=60`, ratelimit: `"${policy}";r=0;t=30`};
}

/** @param {import('./fake-server.js').FakeServer} server */
function statusPollsSince(server, since) {
	return server.requests.filter((request) => request.path.endsWith('/status') && request.at >= since).length;
}

test('a 429 on submit holds back submits only: watched jobs keep being polled', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient({retry: {maxRetryAfterMs: 10_000}});
	const job = server.addJob({status: 'running'});
	void client.watch(job.id).catch(() => {});
	await nextEvent(client, 'update');
	server.failNext(1, {status: 429, retryAfter: 28, method: 'POST', path: SUBMITS, headers: spent('submit', 10)});

	const submitting = client.submit('echo', {n: 1});
	submitting.catch(() => {});
	await eventually(() => server.count({method: 'POST', path: SUBMITS}) === 1, 'the refused submit');
	const refusedAt = Date.now();
	server.update(job.id, {progress: {percent: 60}});

	const progress = await nextEvent(client, 'progress', () => true, 5000);
	assert.equal(progress.progress.percent, 60, 'the change after the 429 arrived by polling');
	await eventually(() => statusPollsSince(server, refusedAt) >= 3, 'steady polls go on', 5000);
	assert.ok(client.health().jobs[job.id].nextPollAt < refusedAt + 9000, 'the next poll is not pushed behind the submit hold');
	assert.equal(server.count({method: 'POST', path: SUBMITS}), 1, 'the submit itself waits out its Retry-After');
});

test('a 429 on a poll holds back polls only: submits, reads and lists go on', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient({retry: {maxRetryAfterMs: 10_000}});
	const job = server.addJob({status: 'running'});
	void client.watch(job.id).catch(() => {});
	await nextEvent(client, 'update');
	server.failNext(1, {status: 429, retryAfter: 28, path: /\/status$/, headers: spent('poll', 1200)});
	await nextEvent(client, 'error');
	const refusedAt = Date.now();

	const created = await client.submit('echo', {n: 1});
	await client.get(created.id);
	await client.list({limit: 1});

	assert.ok(Date.now() - refusedAt < 5000, `the other calls took ${Date.now() - refusedAt} ms, not the 10 s poll hold`);
	await sleep(150);
	assert.equal(statusPollsSince(server, refusedAt), 0, 'no poll during its Retry-After');
	assert.ok(client.health().jobs[job.id].nextPollAt >= refusedAt + 9900, 'the next poll waits for the poll hold');
});

test('a Retry-After wait gets a jitter on top, never less than Retry-After', async (t) => {
	const {server, makeClient} = await setup(t);
	const job = server.addJob();
	const late = makeClient({random: () => 0.99});
	server.failNext(1, {status: 429, retryAfter: 1});

	await late.get(job.id);

	const [limited, retried] = server.requests;
	const waitedMs = retried.at - limited.at;
	// 1 s plus 0.99 of the jitter range, which is 10 % of 1 s.
	assert.ok(waitedMs >= 1095, `retried ${waitedMs} ms after the 429, not on the dot of Retry-After`);
	assert.ok(waitedMs < 2500, `retried ${waitedMs} ms after the 429`);

	const early = makeClient({random: () => 0});
	server.failNext(1, {status: 429, retryAfter: 1});
	const before = server.requests.length;
	await early.get(job.id);
	const [limitedAgain, retriedAgain] = server.requests.slice(before);
	assert.ok(retriedAgain.at - limitedAgain.at >= 995, 'no jitter ever makes the wait shorter than Retry-After');
});

test('requests are classed by the budget the server counts them under', () => {
	assert.equal(requestClassOf({method: 'GET', path: '/api/ai/jobs/job_1/status'}), 'poll');
	assert.equal(requestClassOf({method: 'POST', path: '/api/ai/jobs/statuses'}), 'poll');
	assert.equal(requestClassOf({method: 'POST', path: '/api/ai/jobs'}), 'submit');
	assert.equal(requestClassOf({method: 'GET', path: '/api/ai/jobs'}), 'default');
	assert.equal(requestClassOf({method: 'GET', path: '/api/ai/jobs/job_1'}), 'default');
	assert.equal(requestClassOf({method: 'POST', path: '/api/ai/jobs/job_1/cancel'}), 'default');
});

test('a 429 names the spent budget in RateLimit, else in RateLimit-Policy; unknown names are ignored', () => {
	assert.deepEqual(refusedClasses(new Headers({ratelimit: '"submit";r=0;t=55', 'ratelimit-policy': '"submit";q=10;w=60'})), ['submit']);
	assert.deepEqual(refusedClasses(new Headers({ratelimit: '"poll";r=3;t=5, "default";r=0;t=5'})), ['default']);
	assert.deepEqual(refusedClasses(new Headers({'ratelimit-policy': 'poll;q=1200;w=60'})), ['poll']);
	assert.deepEqual(refusedClasses(new Headers({'ratelimit-policy': '"burst";q=5;w=1'})), []);
	assert.deepEqual(refusedClasses(new Headers()), []);
	assert.deepEqual(refusedClasses(undefined), []);
});

/**
 * @param {number} status
 * @param {number | null} retryAfterMs
 * @param {Record<string, string>} [headers]
 */
function httpError(status, retryAfterMs, headers = {}) {
	return new HTTPError({status, method: 'GET', url: 'http://127.0.0.1/x', headers: new Headers(headers), body: null, retryAfterMs});
}

test('a 429 holds its own class and the budget it names; a 503 holds every class', () => {
	const holds = new RequestHolds({maxRetryAfterMs: 60_000, random: () => 0});
	const now = Date.now();

	holds.learn(httpError(429, 5000, {ratelimit: '"poll";r=0;t=5'}), 'default');
	assert.ok(holds.until('default') >= now + 5000 && holds.until('default') <= Date.now() + 5000);
	assert.equal(holds.until('poll'), holds.until('default'), 'the budget the server named');
	assert.equal(holds.until('submit'), 0, 'another budget is not held');

	holds.learn(httpError(503, 8000), 'submit');
	for (const requestClass of ['poll', 'submit', 'default']) {
		assert.ok(holds.until(requestClass) >= now + 8000, `${requestClass} is held by the 503`);
	}
});

test('only a 429 or 503 with Retry-After holds, capped at maxRetryAfterMs', () => {
	const holds = new RequestHolds({maxRetryAfterMs: 2000, random: () => 0});
	holds.learn(httpError(429, null), 'poll');
	holds.learn(httpError(500, 5000), 'poll');
	holds.learn(new Error('not an HTTP answer'), 'poll');
	assert.equal(holds.until('poll'), 0);

	const now = Date.now();
	holds.learn(httpError(429, 3_600_000), 'poll');
	assert.ok(holds.until('poll') <= now + 2100, 'an hour-long Retry-After is capped');
});

test('the Retry-After jitter is at most 10 % of the wait and at most 1 s', () => {
	const almostOne = () => 0.999_999;
	assert.equal(retryAfterJitterMs(1000, () => 0), 0);
	assert.ok(retryAfterJitterMs(1000, almostOne) < 100 && retryAfterJitterMs(1000, almostOne) > 99);
	assert.ok(retryAfterJitterMs(28_000, almostOne) < RETRY_AFTER_JITTER_MAX_MS && retryAfterJitterMs(28_000, almostOne) > 999);
	assert.equal(retryAfterJitterMs(-5, almostOne), 0);

	const spreads = new Set();
	for (let index = 0; index < 50; index += 1) {
		const spread = new RequestHolds({maxRetryAfterMs: 60_000, random: Math.random});
		const before = Date.now();
		spread.learn(httpError(429, 2000), 'submit');
		const after = Date.now();
		const until = spread.until('submit');
		assert.ok(until >= before + 2000 && until <= after + 2201, `held until ${until - before} ms after the 429`);
		spreads.add(Math.round((until - after) / 20));
	}

	assert.ok(spreads.size > 3, 'clients refused together come back at different times');
});
