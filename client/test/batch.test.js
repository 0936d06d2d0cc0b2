import assert from 'node:assert/strict';
import test from 'node:test';
import {eventually, nextEvent, record, setup, sleep} from './helpers.js';

const BATCH = {minJobs: 2, maxJobs: 100, windowMs: 10};

function batches(server) {
	return server.requests.filter((request) => request.path === '/api/ai/jobs/statuses');
}

test('jobs due together are polled in one batch request with their known versions', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient({batch: BATCH});
	const jobs = [server.addJob({status: 'running'}), server.addJob({status: 'running'}), server.addJob()];
	for (const job of jobs) {
		void client.watch(job.id).catch(() => {});
	}

	await eventually(() => batches(server).length >= 3, 'three batch polls');

	assert.equal(server.count({path: /\/status$/}), 0, 'no single status poll');
	const [first, second] = batches(server);
	assert.deepEqual(first.body.ids.toSorted(), jobs.map((job) => job.id).toSorted());
	assert.deepEqual(first.body.versions, {}, 'nothing known yet');
	assert.deepEqual(second.body.versions, Object.fromEntries(jobs.map((job) => [job.id, 1])));
	assert.ok(client.pollLog().some((entry) => entry.kind === 'batch' && entry.outcome === 'not-modified'));
});

test('only changed jobs come back in full and are announced', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient({batch: BATCH});
	const [a, b] = [server.addJob({status: 'running'}), server.addJob({status: 'running'})];
	void client.watch(a.id).catch(() => {});
	const watchingB = client.watch(b.id);
	await eventually(() => client.health().jobs[a.id]?.version === 1 && client.health().jobs[b.id]?.version === 1);
	const updates = [];
	client.addEventListener('update', (event) => updates.push(event.detail.id));

	server.update(b.id, {status: 'succeeded', result: 'b'});

	assert.equal((await watchingB).result, 'b');
	assert.deepEqual(updates, [b.id]);
	assert.equal(server.count({path: new RegExp(`/api/ai/jobs/${b.id}$`)}), 1, 'one GET for the result');
});

test('a job the batch endpoint does not know is asked alone and fails with the 404 problem', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient({batch: BATCH});
	const known = server.addJob({status: 'running'});
	void client.watch(known.id).catch(() => {});
	const missing = client.watch('job_gone');

	await assert.rejects(missing, {name: 'ProblemError', status: 404});
	assert.ok(batches(server)[0].body.ids.includes('job_gone'));
	assert.equal(server.count({path: /job_gone\/status$/}), 1);
	assert.equal(client.health().jobs[known.id].state, 'active');
});

test('a single due job is polled alone; batch.minJobs sets the threshold', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient({batch: {...BATCH, minJobs: 3}});
	const jobs = [server.addJob({status: 'running'}), server.addJob({status: 'running'})];
	for (const job of jobs) {
		void client.watch(job.id).catch(() => {});
	}

	await eventually(() => server.count() >= 6);

	assert.equal(batches(server).length, 0);
});

test('more due jobs than batch.maxJobs are split over several batch requests', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient({batch: {...BATCH, maxJobs: 2}});
	for (let index = 0; index < 5; index += 1) {
		void client.watch(server.addJob({status: 'running'}).id).catch(() => {});
	}

	await eventually(() => batches(server).length >= 3);

	assert.ok(batches(server).every((request) => request.body.ids.length <= 2));
	assert.ok(batches(server).some((request) => request.body.ids.length === 2));
	assert.equal(new Set(batches(server).flatMap((request) => request.body.ids)).size, 5, 'every job is covered');
});

test('jobs due soon join a batch early, and once batched they stay together', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient({batch: {...BATCH, windowMs: 100}, intervalMs: {queued: 60, running: 60}});
	server.pollAfterMs.running = 60;
	const first = server.addJob({status: 'running'});
	void client.watch(first.id).catch(() => {});
	await sleep(25);
	const second = server.addJob({status: 'running'});
	void client.watch(second.id).catch(() => {});

	await eventually(() => batches(server).length >= 4);
	const lastSingle = server.requests.findLastIndex((request) => request.path.endsWith('/status'));
	const after = server.requests.slice(lastSingle + 1);

	assert.ok(after.length >= 4);
	assert.ok(after.every((request) => request.path === '/api/ai/jobs/statuses' && request.body.ids.length === 2));
});

test('a failed batch backs off every job it covered', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient({batch: BATCH});
	const jobs = [server.addJob({status: 'running'}), server.addJob({status: 'running'})];
	for (const job of jobs) {
		void client.watch(job.id).catch(() => {});
	}

	await eventually(() => batches(server).length >= 1);
	const states = record(client, 'statechange');
	server.failNext(1, {status: 502, path: /statuses/});
	await nextEvent(client, 'statechange', (detail) => detail.state === 'backing-off');
	await eventually(() => states.filter((detail) => detail.state === 'backing-off').length === 2);
	assert.deepEqual(states.filter((detail) => detail.state === 'backing-off').map((detail) => detail.id).toSorted(), jobs.map((job) => job.id).toSorted());
	await eventually(() => jobs.every((job) => client.health().jobs[job.id].state === 'active'));
});
