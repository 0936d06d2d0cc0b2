import assert from 'node:assert/strict';
import test from 'node:test';
import {FakeDocument, FakeWindow, eventually, nextEvent, record, setup, sleep} from './helpers.js';

function statusPolls(server) {
	return server.count({path: /\/status$/});
}

test('a hidden tab polls at hiddenIntervalMs instead of stopping', async (t) => {
	const {server, makeClient} = await setup(t);
	const document = new FakeDocument();
	document.visibilityState = 'hidden';
	const client = makeClient({document, hiddenIntervalMs: 150, random: () => 0.5});
	const job = server.addJob({status: 'running'});
	void client.watch(job.id).catch(() => {});

	await eventually(() => statusPolls(server) >= 3, 'three slow polls');

	const times = server.requests.map((request) => request.at);
	assert.ok(times.slice(1).every((time, index) => time - times[index] >= 140));
	assert.equal(client.health().hidden, true);
});

test('becoming visible triggers one immediate catch-up poll', async (t) => {
	const {server, makeClient} = await setup(t);
	const document = new FakeDocument();
	document.visibilityState = 'hidden';
	const client = makeClient({document, hiddenIntervalMs: 60_000});
	const job = server.addJob({status: 'running'});
	void client.watch(job.id).catch(() => {});
	await nextEvent(client, 'update');
	await sleep(40);
	assert.equal(statusPolls(server), 1, 'hidden: next poll is a minute away');
	server.update(job.id, {progress: {percent: 90}});

	document.setHidden(false);

	const detail = await nextEvent(client, 'progress');
	assert.equal(detail.progress.percent, 90);
	assert.equal(client.health().hidden, false);
});

test('going hidden slows the next polls down', async (t) => {
	const {server, makeClient} = await setup(t);
	const document = new FakeDocument();
	const client = makeClient({document, hiddenIntervalMs: 60_000});
	const job = server.addJob({status: 'running'});
	void client.watch(job.id).catch(() => {});
	await eventually(() => statusPolls(server) >= 2);

	const polled = client.pollLog().length;
	document.setHidden(true);
	document.setHidden(true);
	// The poll already planned (or in flight) still happens; the one after it is a minute away.
	await eventually(() => client.pollLog().length > polled);
	const count = statusPolls(server);
	await sleep(100);

	assert.equal(statusPolls(server), count);
	assert.ok(client.health().jobs[job.id].nextPollAt > Date.now() + 30_000);
});

test('an offline event pauses polling and online catches up at once', async (t) => {
	const {server, makeClient} = await setup(t);
	const window = new FakeWindow();
	const client = makeClient({window});
	const job = server.addJob({status: 'running'});
	const states = record(client, 'statechange');
	void client.watch(job.id).catch(() => {});
	await nextEvent(client, 'update');

	window.goOffline();
	window.goOffline();
	const count = server.count();
	await sleep(80);
	assert.equal(server.count(), count);
	assert.equal(client.health().offline, true);
	assert.equal(client.health().jobs[job.id].state, 'paused');
	server.update(job.id, {progress: {percent: 42}});

	window.goOnline();

	assert.equal((await nextEvent(client, 'progress')).progress.percent, 42);
	assert.deepEqual(states.map((detail) => detail.state), ['active', 'paused', 'active']);
});

test('failed fetches are the offline signal: the watch backs off without any offline event', async (t) => {
	const {server, makeClient} = await setup(t);
	const window = new FakeWindow();
	const client = makeClient({window, retry: {maxAttempts: 100, baseDelayMs: 5, maxDelayMs: 20}});
	const job = server.addJob({status: 'running'});
	const watching = client.watch(job.id);
	await nextEvent(client, 'update');

	server.down = true;
	const error = await nextEvent(client, 'error');
	assert.equal(error.error.name, 'NetworkError');
	assert.equal(client.health().jobs[job.id].state, 'backing-off');
	server.down = false;
	server.update(job.id, {status: 'succeeded'});

	assert.equal((await watching).status, 'succeeded');
});

test('online resets backoff so a backing-off job is polled at once', async (t) => {
	const {server, makeClient} = await setup(t);
	const window = new FakeWindow();
	const client = makeClient({window, retry: {maxAttempts: 100, baseDelayMs: 60_000, maxDelayMs: 60_000}, random: () => 0.99});
	const job = server.addJob({status: 'running'});
	const watching = client.watch(job.id);
	await nextEvent(client, 'update');
	server.failNext(1, {status: 500});
	await nextEvent(client, 'statechange', (detail) => detail.state === 'backing-off');
	server.update(job.id, {status: 'succeeded'});

	window.goOnline();

	assert.equal((await watching).status, 'succeeded');
});
