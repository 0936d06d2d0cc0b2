import assert from 'node:assert/strict';
import test from 'node:test';
import {FakeDocument, FakeLockManager, eventually, nextEvent, setup, sleep} from './helpers.js';

let namespaceCounter = 0;

/** Options for tabs of one simulated browser: shared locks, a shared channel name. */
function browser() {
	namespaceCounter += 1;
	return {locks: new FakeLockManager(), BroadcastChannel, namespace: `cross-tab-${process.pid}-${namespaceCounter}`};
}

const role = (client, id) => client.health().jobs[id]?.role;

test('one tab polls a job and the other tab gets its updates over the channel', async (t) => {
	const {server, makeClient} = await setup(t);
	const tabs = browser();
	const a = makeClient(tabs);
	const b = makeClient(tabs);
	const job = server.addJob();
	const updatesA = [];
	const watchingA = a.watch(job.id, {onUpdate: (status) => updatesA.push(status.status)});
	await eventually(() => role(a, job.id) === 'leader');
	const updatesB = [];
	const watchingB = b.watch(job.id, {onUpdate: (status) => updatesB.push(status.status)});
	await eventually(() => role(b, job.id) === 'follower');

	void server.play(job.id, [{status: 'running'}, {status: 'succeeded', result: 'shared'}], 40);
	const [doneA, doneB] = await Promise.all([watchingA, watchingB]);

	assert.equal(doneA.result, 'shared');
	assert.deepEqual(doneB, doneA);
	assert.deepEqual(updatesB, updatesA, 'the follower saw every version the leader saw');
	assert.equal(updatesB.at(-1), 'succeeded');
	assert.equal(b.pollLog().length, 0, 'the follower never polled');
	assert.ok(a.pollLog().length > 0);
});

test('a joining follower gets the last known status from the leader at once', async (t) => {
	const {server, makeClient} = await setup(t);
	const tabs = browser();
	server.pollAfterMs.running = 10_000;
	const a = makeClient({...tabs, maxIntervalMs: 10_000});
	const b = makeClient(tabs);
	const job = server.addJob({status: 'running'});
	void a.watch(job.id).catch(() => {});
	await nextEvent(a, 'update');

	const status = await new Promise((resolve) => {
		void b.watch(job.id, {onUpdate: resolve}).catch(() => {});
	});

	assert.equal(status.status, 'running');
	assert.equal(b.pollLog().length, 0);
});

test('when the polling tab closes, a waiting tab takes over', async (t) => {
	const {server, makeClient} = await setup(t);
	const tabs = browser();
	const a = makeClient(tabs);
	const b = makeClient(tabs);
	const job = server.addJob({status: 'running'});
	void a.watch(job.id).catch(() => {});
	await eventually(() => role(a, job.id) === 'leader');
	const watchingB = b.watch(job.id);
	await eventually(() => role(b, job.id) === 'follower');

	a.close();

	await eventually(() => role(b, job.id) === 'leader', 'b leads');
	server.update(job.id, {status: 'succeeded'});
	assert.equal((await watchingB).status, 'succeeded');
	assert.ok(b.pollLog().length > 0);
	await eventually(() => tabs.locks.held().length === 0, 'a finished watch releases its lock');
});

test('pausing a job in the leading tab hands its polling to another tab', async (t) => {
	const {server, makeClient} = await setup(t);
	const tabs = browser();
	const a = makeClient(tabs);
	const b = makeClient(tabs);
	const job = server.addJob({status: 'running'});
	void a.watch(job.id).catch(() => {});
	await eventually(() => role(a, job.id) === 'leader');
	void b.watch(job.id).catch(() => {});
	await eventually(() => role(b, job.id) === 'follower');

	a.pause(job.id);
	await eventually(() => role(b, job.id) === 'leader');
	assert.equal(role(a, job.id), null);

	a.resume(job.id);
	await eventually(() => role(a, job.id) === 'follower');
	b.pause();
	await eventually(() => role(a, job.id) === 'leader');
	b.resume();
	await eventually(() => role(b, job.id) === 'follower');
});

test('a visible tab takes polling over from a hidden leader', async (t) => {
	const {server, makeClient} = await setup(t);
	const tabs = browser();
	const hiddenDocument = new FakeDocument();
	hiddenDocument.visibilityState = 'hidden';
	const visibleDocument = new FakeDocument();
	const a = makeClient({...tabs, document: hiddenDocument});
	const b = makeClient({...tabs, document: visibleDocument});
	const job = server.addJob({status: 'running'});
	void a.watch(job.id).catch(() => {});
	await eventually(() => role(a, job.id) === 'leader');

	void b.watch(job.id).catch(() => {});

	await eventually(() => role(b, job.id) === 'leader' && role(a, job.id) === 'follower', 'b steals');
	await sleep(50);
	const polledByA = a.pollLog().length;
	await sleep(100);
	assert.equal(a.pollLog().length, polledByA, 'the hidden tab stopped polling (a poll in flight may finish)');

	visibleDocument.setHidden(true);
	hiddenDocument.setHidden(false);
	await eventually(() => role(a, job.id) === 'leader' && role(b, job.id) === 'follower', 'a takes it back');
});

test('two visible tabs keep one leader instead of taking the job from each other', {timeout: 10_000}, async (t) => {
	const {server, makeClient} = await setup(t);
	const tabs = browser();
	const a = makeClient({...tabs, document: new FakeDocument()});
	const b = makeClient({...tabs, document: new FakeDocument()});
	const job = server.addJob({status: 'running'});
	void a.watch(job.id).catch(() => {});
	await eventually(() => role(a, job.id) === 'leader');
	void b.watch(job.id).catch(() => {});
	await eventually(() => role(b, job.id) === 'follower');
	const requestsBefore = server.requests.length;

	await sleep(300);

	assert.equal(role(a, job.id), 'leader', 'the first visible tab kept the job');
	assert.equal(role(b, job.id), 'follower');
	assert.equal(b.pollLog().length, 0, 'the visible follower never polled');
	assert.ok(server.requests.length - requestsBefore < 20, 'no storm of polls from leaders changing hands');
});

test('a follower refresh polls once itself and shares the result', async (t) => {
	const {server, makeClient} = await setup(t);
	const tabs = browser();
	server.pollAfterMs.running = 10_000;
	const a = makeClient({...tabs, maxIntervalMs: 10_000});
	const b = makeClient({...tabs, maxIntervalMs: 10_000});
	const job = server.addJob({status: 'running'});
	void a.watch(job.id).catch(() => {});
	await nextEvent(a, 'update');
	void b.watch(job.id).catch(() => {});
	await eventually(() => role(b, job.id) === 'follower');
	server.update(job.id, {progress: {percent: 33}});

	const leaderHears = nextEvent(a, 'progress');
	b.refresh(job.id);

	assert.equal((await leaderHears).progress.percent, 33);
	assert.equal(b.pollLog().length, 1);
	assert.equal(b.health().jobs[job.id].nextPollAt, null);
});

test('without Web Locks every tab polls for itself', async (t) => {
	const {server, makeClient} = await setup(t);
	const a = makeClient({BroadcastChannel, locks: null});
	const b = makeClient({BroadcastChannel, locks: null});
	const job = server.addJob({status: 'running'});

	void a.watch(job.id).catch(() => {});
	void b.watch(job.id).catch(() => {});

	await eventually(() => a.pollLog().length > 1 && b.pollLog().length > 1);
	assert.equal(role(a, job.id), 'leader');
	assert.equal(role(b, job.id), 'leader');
});

test('a lock manager that refuses makes the tab poll on its own', async (t) => {
	const {server, makeClient} = await setup(t);
	const locks = {request: () => Promise.reject(new DOMException('opaque origin', 'SecurityError'))};
	const client = makeClient({locks, BroadcastChannel, namespace: `refusing-${process.pid}`});
	const job = server.addJob({status: 'succeeded'});

	assert.equal((await client.watch(job.id)).status, 'succeeded');
});
