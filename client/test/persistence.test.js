import assert from 'node:assert/strict';
import test from 'node:test';
import {DeadlineError} from '../src/index.js';
import {StateStore} from '../src/storage.js';
import {MemoryStorage, eventually, nextEvent, setup} from './helpers.js';

const KEY = 'ai-jobs:state';

function saved(storage) {
	return JSON.parse(storage.getItem(KEY));
}

test('a watch persists its schedule, version and ETag', async (t) => {
	const {server, makeClient} = await setup(t);
	const storage = new MemoryStorage();
	server.pollAfterMs.running = 5000;
	const client = makeClient({storage, maxIntervalMs: 5000});
	const job = server.addJob({status: 'running'});
	void client.watch(job.id).catch(() => {});
	await nextEvent(client, 'update');
	await eventually(() => saved(storage)?.jobs[job.id]?.etag && saved(storage).breaker);

	const record = saved(storage).jobs[job.id];
	assert.equal(record.version, 1);
	assert.equal(record.etag, '"v1"');
	assert.equal(record.attempt, 0);
	assert.equal(record.state, 'active');
	assert.ok(record.nextPollAt > Date.now() + 3000);
	assert.ok(record.deadlineAt > Date.now());
	assert.equal(record.status.status, 'running');
	assert.deepEqual(saved(storage).breaker, {state: 'closed', failures: 0, openedAt: null});
});

test('after a reload resumeWatches continues with the remaining delay and a conditional request', async (t) => {
	const {server, makeClient} = await setup(t);
	const storage = new MemoryStorage();
	server.pollAfterMs.running = 400;
	const options = {storage, maxIntervalMs: 5000, random: () => 0.5};
	const before = makeClient(options);
	const job = server.addJob({status: 'running'});
	void before.watch(job.id).catch(() => {});
	await nextEvent(before, 'update');
	await eventually(() => saved(storage)?.jobs[job.id]?.etag);
	const {nextPollAt} = saved(storage).jobs[job.id];
	before.close();
	assert.ok(saved(storage).jobs[job.id], 'close keeps persisted watches');

	const after = makeClient(options);
	const resumed = after.resumeWatches();
	assert.deepEqual([...resumed.keys()], [job.id]);
	assert.equal(after.health().jobs[job.id].nextPollAt, nextPollAt);
	await eventually(() => server.count() === 2, 'the resumed poll');

	const poll = server.requests[1];
	assert.ok(poll.at >= nextPollAt - 5, 'waited out the remaining delay');
	assert.equal(poll.headers['if-none-match'], '"v1"');
	server.update(job.id, {status: 'succeeded', result: 'after reload'});
	assert.equal((await resumed.get(job.id)).result, 'after reload');
	await eventually(() => storage.getItem(KEY) === null, 'finished watches are forgotten');
});

test('a resumed watch keeps its original deadline', async (t) => {
	const {server, makeClient} = await setup(t);
	const storage = new MemoryStorage();
	const before = makeClient({storage, deadlineMs: 150});
	const job = server.addJob({status: 'running'});
	void before.watch(job.id).catch(() => {});
	await eventually(() => saved(storage)?.jobs[job.id]);
	before.close();

	const after = makeClient({storage, deadlineMs: 60_000});
	const startedAt = Date.now();
	await assert.rejects(after.resumeWatches().get(job.id), DeadlineError);
	assert.ok(Date.now() - startedAt < 10_000, 'not the new 60 s deadline');
});

test('a resumed watch keeps its backoff and attempt count', async (t) => {
	const {server, makeClient} = await setup(t);
	const storage = new MemoryStorage();
	const before = makeClient({storage, retry: {maxAttempts: 10, baseDelayMs: 400, maxDelayMs: 400}, random: () => 0.99});
	const job = server.addJob({status: 'running'});
	server.failNext(1, {status: 500});
	void before.watch(job.id).catch(() => {});
	await nextEvent(before, 'statechange', (detail) => detail.state === 'backing-off');
	await eventually(() => saved(storage)?.jobs[job.id]?.state === 'backing-off');
	before.close();

	const after = makeClient({storage});
	void after.resumeWatches().get(job.id).catch(() => {});

	const health = after.health().jobs[job.id];
	assert.equal(health.state, 'backing-off');
	assert.equal(health.attempt, 1);
	assert.ok(health.nextPollAt > Date.now() + 200);
});

test('an open breaker is restored from storage', async (t) => {
	const {server, makeClient} = await setup(t);
	const storage = new MemoryStorage();
	const before = makeClient({storage, breaker: {failureThreshold: 1, coolDownMs: 60_000}, retry: {maxAttempts: 1}});
	server.failNext(1, {status: 500});
	await assert.rejects(before.get('job_x'));
	before.close();

	const after = makeClient({storage, breaker: {failureThreshold: 1, coolDownMs: 60_000}});

	assert.equal(after.health().breaker, 'open');
	await assert.rejects(after.get('job_x'), {name: 'CircuitOpenError'});
});

test('a paused watch stays paused after a reload', async (t) => {
	const {server, makeClient} = await setup(t);
	const storage = new MemoryStorage();
	const before = makeClient({storage});
	const job = server.addJob({status: 'running'});
	void before.watch(job.id).catch(() => {});
	await nextEvent(before, 'update');
	before.pause(job.id);
	before.close();
	const count = server.count();

	const after = makeClient({storage});
	void after.resumeWatches().get(job.id).catch(() => {});
	await new Promise((resolve) => setTimeout(resolve, 60));

	assert.equal(after.health().jobs[job.id].state, 'paused');
	assert.equal(server.count(), count);
	after.resume(job.id);
	await eventually(() => server.count() > count);
});

test('unwatch forgets the persisted watch', async (t) => {
	const {server, makeClient} = await setup(t);
	const storage = new MemoryStorage();
	const client = makeClient({storage});
	const job = server.addJob({status: 'running'});
	void client.watch(job.id).catch(() => {});
	await eventually(() => saved(storage)?.jobs[job.id]);

	client.unwatch(job.id);

	await eventually(() => storage.getItem(KEY) === null);
	assert.equal(client.resumeWatches().size, 0);
});

test('unreadable or failing storage never breaks the client', async (t) => {
	const {server, makeClient} = await setup(t);
	const broken = {
		getItem: () => '{not json',
		setItem() {
			throw new Error('QuotaExceededError');
		},
		removeItem() {},
	};
	const client = makeClient({storage: broken});
	const job = server.addJob({status: 'succeeded'});

	assert.equal((await client.watch(job.id)).status, 'succeeded');
	assert.equal(client.resumeWatches().size, 0);
});

test('stores of other formats are ignored and writes keep other tabs entries', () => {
	const storage = new MemoryStorage();
	storage.setItem(KEY, JSON.stringify({formatVersion: 99, jobs: {a: {}}}));
	const store = new StateStore(storage, KEY);
	assert.deepEqual(store.load(), {breaker: null, jobs: {}});

	const otherTab = new StateStore(storage, KEY);
	otherTab.write({jobs: {job_a: /** @type {any} */ ({nextPollAt: 1})}});
	store.write({jobs: {job_b: /** @type {any} */ ({nextPollAt: 2})}});
	assert.deepEqual(Object.keys(store.load().jobs).toSorted(), ['job_a', 'job_b']);

	const disabled = new StateStore(null, KEY);
	disabled.write({jobs: {job_c: /** @type {any} */ ({})}});
	assert.deepEqual(disabled.load(), {breaker: null, jobs: {}});
});
