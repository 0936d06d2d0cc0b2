import assert from 'node:assert/strict';
import test from 'node:test';
import {eventually, nextEvent, record, setup, sleep} from './helpers.js';

/** Start times of consecutive status polls of one job. */
function pollStarts(client) {
	return client.pollLog().filter((entry) => entry.kind === 'status').map((entry) => entry.at);
}

function gaps(times) {
	return times.slice(1).map((time, index) => time - times[index]);
}

test('the server poll_after_ms hint wins over the configured interval', async (t) => {
	const {server, makeClient} = await setup(t);
	server.pollAfterMs.running = 120;
	const client = makeClient({intervalMs: {running: 5}, random: () => 0.5});
	const job = server.addJob({status: 'running'});
	void client.watch(job.id).catch(() => {});

	await eventually(() => pollStarts(client).length >= 3, 'three polls');

	assert.ok(gaps(pollStarts(client)).every((gap) => gap >= 110), `gaps ${gaps(pollStarts(client))}`);
});

test('a server hint above maxIntervalMs is capped', async (t) => {
	const {server, makeClient} = await setup(t);
	server.pollAfterMs.running = 3_600_000;
	const client = makeClient({maxIntervalMs: 60, random: () => 0.5});
	const job = server.addJob({status: 'running'});
	void client.watch(job.id).catch(() => {});

	await eventually(() => pollStarts(client).length >= 4, 'four polls within seconds, not hours');

	assert.ok(gaps(pollStarts(client)).every((gap) => gap >= 55));
});

test('a server hint below minIntervalMs is floored', async (t) => {
	const {server, makeClient} = await setup(t);
	server.pollAfterMs.running = 0;
	const client = makeClient({minIntervalMs: 50, random: () => 0.5});
	const job = server.addJob({status: 'running'});
	void client.watch(job.id).catch(() => {});

	await eventually(() => pollStarts(client).length >= 3, 'three polls');

	assert.ok(gaps(pollStarts(client)).every((gap) => gap >= 45), `gaps ${gaps(pollStarts(client))}`);
});

test('the configured interval per status applies when the server sends no hint', async (t) => {
	const {server, makeClient} = await setup(t);
	server.pollAfterMs = {queued: null, running: null};
	server.sendRetryAfter = false;
	const client = makeClient({intervalMs: {queued: 80, running: 5}, random: () => 0.5});
	const job = server.addJob();
	void client.watch(job.id).catch(() => {});

	await eventually(() => pollStarts(client).length >= 3, 'three polls');

	assert.ok(gaps(pollStarts(client)).every((gap) => gap >= 75));
});

test('failed polls back off, then the watch recovers to active', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient();
	const job = server.addJob();
	const states = record(client, 'statechange');
	const errors = record(client, 'error');
	server.failNext(3, {status: 500, path: /\/status$/});
	void server.play(job.id, [{status: 'succeeded'}], 150);

	const done = await client.watch(job.id);

	assert.equal(done.status, 'succeeded');
	assert.deepEqual(states.map((detail) => detail.state), ['active', 'backing-off', 'active', 'done']);
	assert.equal(errors.filter((detail) => !detail.final).length, 3);
});

test('a watch gives up after retry.maxAttempts failed polls with the last error', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient({retry: {maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 5}});
	const job = server.addJob();
	server.failNext(100, {status: 503});
	const errors = record(client, 'error');

	await assert.rejects(client.watch(job.id), {name: 'ProblemError', status: 503});

	assert.equal(server.count(), 3);
	assert.equal(errors.at(-1).final, true);
});

test('a poll answered 503 with Retry-After waits that long before the next poll', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient();
	const job = server.addJob();
	server.failNext(1, {status: 503, retryAfter: 1});
	void server.play(job.id, [{status: 'succeeded'}], 50);

	await client.watch(job.id);

	const [failed, next] = server.requests;
	assert.ok(next.at - failed.at >= 950, `next poll after ${next.at - failed.at} ms`);
});

test('a 429 Retry-After holds back polls of every job, not only the one that got it', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient({retry: {maxRetryAfterMs: 300}});
	const first = server.addJob({status: 'running'});
	void client.watch(first.id).catch(() => {});
	await nextEvent(client, 'update');
	server.failNext(1, {status: 429, retryAfter: 60});
	await nextEvent(client, 'error');
	const limitedAt = Date.now();
	const second = server.addJob({status: 'running'});
	void client.watch(second.id).catch(() => {});

	await nextEvent(client, 'update', (detail) => detail.id === second.id);

	assert.ok(Date.now() - limitedAt >= 250, 'the new job waited for the hold');
});

test('pause() stops all polling and resume() polls again at once', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient();
	const job = server.addJob({status: 'running'});
	const states = record(client, 'statechange');
	const watching = client.watch(job.id);
	await nextEvent(client, 'update');

	client.pause();
	const count = server.count();
	await sleep(80);
	assert.equal(server.count(), count, 'no request while paused');
	assert.equal(client.health().jobs[job.id].state, 'paused');
	assert.equal(client.health().paused, true);

	server.update(job.id, {status: 'succeeded'});
	client.resume();
	assert.equal((await watching).status, 'succeeded');
	assert.deepEqual(states.map((detail) => detail.state), ['active', 'paused', 'active', 'done']);
});

test('pausing one job leaves the others polling', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient();
	const paused = server.addJob({status: 'running'});
	const other = server.addJob({status: 'running'});
	void client.watch(paused.id).catch(() => {});
	void client.watch(other.id).catch(() => {});
	await eventually(() => client.health().jobs[paused.id].version === 1);

	client.pause(paused.id);
	const before = server.count({path: new RegExp(paused.id)});
	server.update(other.id, {progress: {percent: 50}});
	await nextEvent(client, 'progress', (detail) => detail.id === other.id);
	await sleep(60);

	assert.equal(server.count({path: new RegExp(paused.id)}), before);
	assert.equal(client.health().jobs[paused.id].state, 'paused');
	assert.equal(client.health().jobs[paused.id].nextPollAt, null);

	client.resume(paused.id);
	server.update(paused.id, {status: 'succeeded'});
	await nextEvent(client, 'done', (detail) => detail.id === paused.id);
});

test('pause and resume of unknown or already-set jobs are harmless no-ops', async (t) => {
	const {makeClient} = await setup(t);
	const client = makeClient();

	client.pause('job_nope');
	client.resume('job_nope');
	client.resume();
	client.pause();
	client.pause();
	client.resume();

	assert.equal(client.health().paused, false);
});

test('refresh() polls at once instead of waiting for the interval', async (t) => {
	const {server, makeClient} = await setup(t);
	server.pollAfterMs.running = 10_000;
	const client = makeClient({maxIntervalMs: 10_000});
	const job = server.addJob({status: 'running'});
	void client.watch(job.id).catch(() => {});
	await nextEvent(client, 'update');
	await sleep(30);
	server.update(job.id, {progress: {percent: 75}});

	client.refresh(job.id);

	const detail = await nextEvent(client, 'progress', () => true, 2000);
	assert.equal(detail.progress.percent, 75);
	client.refresh();
});

test('status() on a watched job feeds the watch, and a terminal one finishes it quickly', async (t) => {
	const {server, makeClient} = await setup(t);
	server.pollAfterMs.running = 10_000;
	const client = makeClient({maxIntervalMs: 10_000});
	const job = server.addJob({status: 'running'});
	const watching = client.watch(job.id);
	await nextEvent(client, 'update');
	server.update(job.id, {status: 'succeeded', result: 'ok'});

	await client.status(job.id);

	assert.equal((await watching).result, 'ok');
});

test('cancel() of a watched queued job finishes the watch with the cancelled job', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient();
	const job = server.addJob();
	const watching = client.watch(job.id);
	await nextEvent(client, 'update');

	await client.cancel(job.id);

	assert.equal((await watching).status, 'cancelled');
});

test('get() of a watched running job records its newer version', async (t) => {
	const {server, makeClient} = await setup(t);
	server.pollAfterMs.running = 10_000;
	const client = makeClient({maxIntervalMs: 10_000});
	const job = server.addJob({status: 'running'});
	void client.watch(job.id).catch(() => {});
	await nextEvent(client, 'update');
	server.update(job.id, {progress: {percent: 30}});

	const updated = nextEvent(client, 'update');
	await client.get(job.id);

	assert.equal((await updated).status.version, 2);
	assert.equal(client.health().jobs[job.id].version, 2);
});
