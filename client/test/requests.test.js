import assert from 'node:assert/strict';
import test from 'node:test';
import {CircuitOpenError, HTTPError, NetworkError, ProblemError, TimeoutError} from '../src/index.js';
import {eventually, setup} from './helpers.js';

test('submit sends the bearer token and a generated request id, and returns the 202 job', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient();

	const job = await client.submit('summarize', {text: 'hello'});

	assert.equal(job.agent, 'summarize');
	assert.equal(job.status, 'queued');
	const [request] = server.requests;
	assert.equal(request.headers.authorization, `Bearer ${server.apiKey}`);
	assert.match(request.body.request_id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
	assert.equal(job.request_id, request.body.request_id);
});

test('submitting twice with the same request id returns the same job', async (t) => {
	const {makeClient} = await setup(t);
	const client = makeClient();

	const first = await client.submit('echo', {n: 1}, {requestId: 'req-1'});
	const second = await client.submit('echo', {n: 1}, {requestId: 'req-1'});

	assert.equal(second.id, first.id);
});

test('a retried submit after a lost answer does not create a second job', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient();
	server.failNext(1, {status: 503, path: /^\/api\/ai\/jobs$/});

	const job = await client.submit('echo', {n: 1});

	assert.equal(server.count({method: 'POST'}), 2);
	assert.equal(server.requests[0].body.request_id, server.requests[1].body.request_id);
	assert.equal(server.jobs.size, 1);
	assert.equal(job.id, [...server.jobs.keys()][0]);
});

test('getToken is asked for the token on every request', async (t) => {
	const {server, makeClient} = await setup(t);
	let calls = 0;
	const client = makeClient({apiKey: undefined, getToken: async () => {
		calls += 1;
		return server.apiKey;
	}});
	const job = server.addJob();

	await client.get(job.id);
	await client.status(job.id);

	assert.equal(calls, 2);
});

test('a validation problem is final: ProblemError carries the problem body and nothing is retried', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient();

	await assert.rejects(client.submit('x', null, {requestId: 'r'}).then(() => client.submit('x', {changed: true}, {requestId: 'r'})), (error) => {
		assert.ok(error instanceof ProblemError);
		assert.ok(error instanceof HTTPError);
		assert.equal(error.name, 'ProblemError');
		assert.equal(error.status, 409);
		assert.equal(error.problem.detail, 'request_id already used with a different body');
		assert.match(error.message, /Conflict/);
		return true;
	});
	assert.equal(server.count({method: 'POST'}), 2);
});

test('a wrong key is a final 401', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient({apiKey: 'wrong'});

	await assert.rejects(client.list(), {name: 'ProblemError', status: 401});
	assert.equal(server.count(), 1);
});

test('get, status, cancel and list talk to their endpoints', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient();
	const queued = server.addJob({agent: 'a'});
	server.addJob({agent: 'b', status: 'running'});

	const job = await client.get(queued.id);
	const status = await client.status(queued.id);
	const cancelled = await client.cancel(queued.id);
	const page = await client.list({agent: 'a', limit: 1});
	const all = await client.list({limit: 1});

	assert.equal(job.id, queued.id);
	assert.equal(status.queue_position, 0); // the only queued job: none ahead
	assert.equal(status.poll_after_ms, 20);
	assert.equal(cancelled.status, 'cancelled');
	assert.deepEqual(page.jobs.map((each) => each.id), [queued.id]);
	assert.equal(page.next_cursor, null);
	assert.equal(all.next_cursor, '1');
	assert.equal(server.requests.at(-1).query.limit, '1');
});

test('cancelling a finished job is a 409 problem', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient();
	const job = server.addJob({status: 'succeeded'});

	await assert.rejects(client.cancel(job.id), {name: 'ProblemError', status: 409});
});

test('5xx answers are retried with backoff until one succeeds', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient();
	const job = server.addJob();
	server.failNext(2, {status: 502});

	const fetched = await client.get(job.id);

	assert.equal(fetched.id, job.id);
	assert.equal(server.count(), 3);
});

test('retries stop after retry.maxAttempts with the last error', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient({retry: {maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 5}});
	server.failNext(10, {status: 500});

	await assert.rejects(client.get('job_0001'), {name: 'ProblemError', status: 500});
	assert.equal(server.count(), 3);
});

test('a 429 Retry-After is waited out before the retry', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient();
	const job = server.addJob();
	server.failNext(1, {status: 429, retryAfter: 1});

	await client.get(job.id);

	const [limited, retried] = server.requests;
	assert.ok(retried.at - limited.at >= 950, `retried after ${retried.at - limited.at} ms`);
});

test('Retry-After is capped by retry.maxRetryAfterMs', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient({retry: {maxRetryAfterMs: 30}});
	const job = server.addJob();
	server.failNext(1, {status: 503, retryAfter: 3600});

	await client.get(job.id);

	assert.equal(server.count(), 2);
});

test('a slow answer is aborted after requestTimeoutMs with a TimeoutError', async (t) => {
	const {server, makeClient} = await setup(t);
	let attempts = 0;
	const countingFetch = (/** @type {any[]} */ ...args) => {
		attempts += 1;
		return fetch(...args);
	};
	const client = makeClient({requestTimeoutMs: 40, retry: {maxAttempts: 2}, fetch: countingFetch});
	server.delayMs = 400;

	await assert.rejects(client.get('job_0001'), (error) => {
		assert.ok(error instanceof TimeoutError);
		assert.equal(error.timeoutMs, 40);
		return true;
	});
	assert.equal(attempts, 2, 'a timeout is retried');
});

test('a dropped connection is a NetworkError', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient({retry: {maxAttempts: 1}});
	server.down = true;

	await assert.rejects(client.get('job_0001'), (error) => {
		assert.ok(error instanceof NetworkError);
		assert.ok(error.cause);
		return true;
	});
});

test('an aborted call rejects with the signal reason and is not retried', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient();
	server.delayMs = 200;
	const controller = new AbortController();
	const pending = client.get('job_0001', {signal: controller.signal});
	await eventually(() => server.count() === 1, 'the request reached the server');
	controller.abort(new Error('user left'));

	await assert.rejects(pending, {message: 'user left'});
	assert.equal(server.count(), 1);
});

test('an open circuit refuses calls locally with CircuitOpenError', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient({breaker: {failureThreshold: 2, coolDownMs: 10_000}, retry: {maxAttempts: 1}});
	server.failNext(2, {status: 500});
	await assert.rejects(client.get('job_0001'), HTTPError);
	await assert.rejects(client.get('job_0001'), HTTPError);

	await assert.rejects(client.get('job_0001'), (error) => {
		assert.ok(error instanceof CircuitOpenError);
		assert.ok(error.retryAt > Date.now());
		return true;
	});
	assert.equal(server.count(), 2);
});

test('calls after close reject with AbortError', async (t) => {
	const {makeClient} = await setup(t);
	const client = makeClient();
	client.close();

	await assert.rejects(client.get('job_0001'), {name: 'AbortError'});
	await assert.rejects(client.watch('job_0001'), {name: 'AbortError'});
});

test('bad arguments are TypeErrors', async (t) => {
	const {makeClient} = await setup(t);
	const client = makeClient();

	await assert.rejects(client.submit('', {}), TypeError);
	await assert.rejects(client.submit('a', {}, {requestId: ''}), TypeError);
	await assert.rejects(client.get(''), TypeError);
	assert.throws(() => client.watch(''), TypeError);
	assert.throws(() => client.watch('job_1', {onUpdate: 'no'}), TypeError);
	assert.throws(() => client.watch('job_1', {deadlineMs: 0}), TypeError);
});
