import assert from 'node:assert/strict';
import {readFile} from 'node:fs/promises';
import test from 'node:test';
import * as api from '../src/index.js';
import {FakeDocument, FakeLockManager, FakeWindow, eventually, nextEvent, setup, sleep} from './helpers.js';

test('health reports success rate, latency percentiles, failures and each job', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient();
	assert.equal(client.health().successRate, null, 'nothing measured yet');
	const job = server.addJob({status: 'running'});
	server.failNext(1, {status: 500, path: /\/status$/});
	void client.watch(job.id).catch(() => {});

	await eventually(() => client.pollLog().filter((entry) => entry.outcome !== 'error').length >= 3);
	const health = client.health();

	assert.ok(health.successRate > 0 && health.successRate < 1);
	assert.ok(health.p50LatencyMs >= 0);
	assert.ok(health.p95LatencyMs >= health.p50LatencyMs);
	assert.equal(health.consecutiveFailures, 0);
	assert.ok(health.lastSuccessAt <= Date.now());
	assert.equal(health.breaker, 'closed');
	assert.equal(health.jobs[job.id].state, 'active');
	assert.equal(health.jobs[job.id].role, 'leader');
	assert.equal(health.jobs[job.id].status, 'running');
	assert.ok(health.jobs[job.id].nextPollAt > client.pollLog().at(-1).at, 'the next poll comes after the last one');
	const [failed] = client.pollLog();
	assert.deepEqual({...failed, at: 0, latencyMs: 0}, {at: 0, kind: 'status', ids: [job.id], outcome: 'error', httpStatus: 500, latencyMs: 0, error: 'ProblemError'});
});

test('the poll log is a bounded ring buffer', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient({pollLogSize: 3});
	const job = server.addJob({status: 'running'});
	void client.watch(job.id).catch(() => {});

	await eventually(() => server.count() >= 6);

	const log = client.pollLog();
	assert.equal(log.length, 3);
	assert.ok(log[0].at <= log[1].at && log[1].at <= log[2].at, 'oldest first');
});

test('close() clears every timer and listener the client created', async (t) => {
	const {server, makeClient} = await setup(t);
	const live = new Set();
	const {setTimeout: realSetTimeout, clearTimeout: realClearTimeout} = globalThis;
	globalThis.setTimeout = /** @type {any} */ ((callback, ms, ...rest) => {
		const fromClient = /client\/src\//.test(new Error('probe').stack ?? '');
		const handle = realSetTimeout(() => {
			live.delete(handle);
			callback(...rest);
		}, ms);
		if (fromClient) {
			live.add(handle);
		}

		return handle;
	});
	globalThis.clearTimeout = /** @type {any} */ ((handle) => {
		live.delete(handle);
		realClearTimeout(handle);
	});
	t.after(() => {
		globalThis.setTimeout = realSetTimeout;
		globalThis.clearTimeout = realClearTimeout;
	});
	const document = new FakeDocument();
	const window = new FakeWindow();
	const listeners = new Map();
	for (const target of [document, window]) {
		const add = target.addEventListener.bind(target);
		const remove = target.removeEventListener.bind(target);
		target.addEventListener = (type, listener) => {
			listeners.set(type, (listeners.get(type) ?? 0) + 1);
			add(type, listener);
		};

		target.removeEventListener = (type, listener) => {
			listeners.set(type, listeners.get(type) - 1);
			remove(type, listener);
		};
	}

	const locks = new FakeLockManager();
	const client = makeClient({document, window, locks, BroadcastChannel, namespace: `timers-${process.pid}`, deadlineMs: 60_000, longPoll: true, waitSeconds: 30});
	const jobs = [server.addJob({status: 'running'}), server.addJob({status: 'running'})];
	const watches = jobs.map((job) => client.watch(job.id).catch((error) => error));
	await eventually(() => server.requests.filter((request) => request.query.wait === '30').length >= 2);
	assert.ok(live.size > 0, 'timers were running');

	client.close();
	client.close();

	assert.equal(live.size, 0, 'no client timer left');
	assert.ok([...listeners.values()].every((count) => count === 0), 'no listener left');
	for (const result of await Promise.all(watches)) {
		assert.equal(result.name, 'AbortError');
	}

	await eventually(() => locks.held().length === 0, 'locks released');
	client.stop();
});

test('the package exports every name its type declarations promise', async () => {
	const declarations = await readFile(new URL('../src/index.d.ts', import.meta.url), 'utf8');
	const declared = [...declarations.matchAll(/^export (?:declare )?(?:class|function|const) (\w+)/gm)].map((match) => match[1]);

	assert.ok(declared.length > 10);
	assert.deepEqual(declared.filter((name) => !(name in api)), []);
	assert.deepEqual(Object.keys(api).filter((name) => !declared.includes(name)), []);
});

test('events are typed CustomEvents on the client itself', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient();
	const job = server.addJob({status: 'succeeded'});
	const seen = [];
	const listener = (event) => seen.push(event.type);
	for (const type of ['update', 'progress', 'done', 'statechange']) {
		client.addEventListener(type, listener);
	}

	await client.watch(job.id);
	await sleep(5);
	for (const type of ['update', 'progress', 'done', 'statechange']) {
		client.removeEventListener(type, listener);
	}

	assert.deepEqual(seen, ['statechange', 'update', 'progress', 'statechange', 'done']);
	assert.ok(client instanceof EventTarget);
	void nextEvent;
});
