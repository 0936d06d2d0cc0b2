import assert from 'node:assert/strict';
import test from 'node:test';
import {FakeDocument, eventually, nextEvent, setup, sleep} from './helpers.js';

test('in long-poll mode an update arrives within a fraction of a second from a held request', async (t) => {
	const {server, makeClient} = await setup(t);
	server.pollAfterMs.running = 5000;
	const client = makeClient({longPoll: true, waitSeconds: 5, maxIntervalMs: 5000, minIntervalMs: 5});
	const job = server.addJob({status: 'running'});
	void client.watch(job.id).catch(() => {});
	await nextEvent(client, 'update');
	await sleep(200);
	const requestsBefore = server.count();

	const changedAt = Date.now();
	server.update(job.id, {progress: {percent: 70}});
	await nextEvent(client, 'progress');

	assert.ok(Date.now() - changedAt < 1000, `arrived after ${Date.now() - changedAt} ms, not at the 5 s poll interval`);
	assert.ok(requestsBefore <= 3, `${requestsBefore} requests while nothing changed`);
	const held = server.requests.filter((request) => request.query.wait === '5');
	assert.ok(held.length >= 1);
	assert.ok(held.every((request) => request.headers['if-none-match']));
});

test('a long poll that times out with 304 is simply re-issued', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient({longPoll: true, waitSeconds: 1, minIntervalMs: 5});
	const job = server.addJob({status: 'running'});
	void client.watch(job.id).catch(() => {});

	await eventually(() => client.pollLog().some((entry) => entry.outcome === 'not-modified'), 'a held request timing out', 3000);
	await eventually(() => server.count() >= 3, 'the next long poll', 3000);

	assert.equal(client.health().jobs[job.id].attempt, 0);
});

test('long polls of several jobs go through the batch endpoint with wait', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient({longPoll: true, waitSeconds: 5, batch: {minJobs: 2, windowMs: 10}});
	const [a, b] = [server.addJob({status: 'running'}), server.addJob({status: 'running'})];
	void client.watch(a.id).catch(() => {});
	const watchingB = client.watch(b.id);
	await eventually(() => server.requests.some((request) => request.path === '/api/ai/jobs/statuses' && request.query.wait === '5'));

	server.update(b.id, {status: 'succeeded'});

	assert.equal((await watchingB).status, 'succeeded');
	assert.ok(server.count() <= 6, `${server.count()} requests`);
});

test('a hidden tab stops holding long polls and polls slowly instead', async (t) => {
	const {server, makeClient} = await setup(t);
	const document = new FakeDocument();
	document.visibilityState = 'hidden';
	const client = makeClient({longPoll: true, waitSeconds: 5, document, hiddenIntervalMs: 50});
	const job = server.addJob({status: 'running'});
	void client.watch(job.id).catch(() => {});

	await eventually(() => server.count() >= 3);

	assert.ok(server.requests.every((request) => request.query.wait === undefined));
});

test('close() aborts a held long poll at once', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient({longPoll: true, waitSeconds: 30});
	const job = server.addJob({status: 'running'});
	const watching = client.watch(job.id);
	await eventually(() => server.requests.some((request) => request.query.wait === '30'));

	client.close();

	await assert.rejects(watching, {name: 'AbortError'});
	assert.equal(client.pollLog().filter((entry) => entry.outcome === 'error').length, 0, 'an abort is not a failure');
});
