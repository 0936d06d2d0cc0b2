import assert from 'node:assert/strict';
import test from 'node:test';
import {FakeDocument, FakeLockManager, FreezableTab, eventually, nextEvent, setup, sleep} from './helpers.js';

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

/** Status polls one client made of a job. */
const pollsBy = (client) => client.pollLog().length;

/**
 * Tab `a` leads the job and tab `b` follows; `a`'s fetch, locks and channel go through `frozenTab`.
 * @param {import('node:test').TestContext} t
 * @param {{loseLocksSilently?: boolean}} [freezeOptions]
 */
async function leaderAndFollower(t, freezeOptions) {
	const {server, makeClient} = await setup(t);
	const tabs = browser();
	const frozenTab = new FreezableTab(tabs.locks, freezeOptions);
	const a = makeClient({...tabs, ...frozenTab.options()});
	const b = makeClient(tabs);
	const job = server.addJob({status: 'running'});
	void a.watch(job.id).catch(() => {});
	await eventually(() => role(a, job.id) === 'leader');
	const watchingB = b.watch(job.id);
	watchingB.catch(() => {});
	await eventually(() => role(b, job.id) === 'follower');
	return {server, a, b, job, frozenTab, watchingB};
}

test('a follower takes over a job whose leading tab froze without letting go of its lock', async (t) => {
	const {server, a, b, job, frozenTab, watchingB} = await leaderAndFollower(t);
	await sleep(100);
	assert.equal(pollsBy(b), 0, 'a live leader keeps its job');

	frozenTab.freeze();
	const frozenAt = Date.now();

	await eventually(() => role(b, job.id) === 'leader', 'the follower takes over', 5000);
	assert.ok(Date.now() - frozenAt >= 900, `taken over after ${Date.now() - frozenAt} ms of silence, not at once`);
	server.update(job.id, {status: 'succeeded', result: 'polled by the new leader'});
	assert.equal((await watchingB).result, 'polled by the new leader');
	assert.ok(pollsBy(b) > 0);
	assert.equal(role(a, job.id), 'leader', 'the frozen tab has not noticed anything yet');
});

test('a frozen leader that wakes up after a takeover follows the new leader and stops polling', async (t) => {
	const {a, b, job, frozenTab} = await leaderAndFollower(t);
	frozenTab.freeze();
	await eventually(() => role(b, job.id) === 'leader', 'the follower takes over', 5000);

	frozenTab.thaw();

	await eventually(() => role(a, job.id) === 'follower', 'the old leader follows');
	await sleep(50);
	const polledByA = pollsBy(a);
	await sleep(200);
	assert.equal(pollsBy(a), polledByA, 'the old leader stopped polling');
	assert.equal(role(b, job.id), 'leader');
});

test('a stale leader steps down when it hears a newer leader, even before it learns its lock was taken', async (t) => {
	const {a, b, job, frozenTab} = await leaderAndFollower(t, {loseLocksSilently: true});
	frozenTab.freeze();
	await eventually(() => role(b, job.id) === 'leader', 'the follower takes over', 5000);

	frozenTab.thaw();

	await eventually(() => role(a, job.id) === 'follower', 'the stale leader steps down on the new leader\'s beat');
	await sleep(50);
	const polledByA = pollsBy(a);
	await sleep(200);
	assert.equal(pollsBy(a), polledByA, 'only one tab polls');
	assert.equal(role(b, job.id), 'leader', 'the newer leader keeps the job');
});

test('a follower does not take over from a live leader that polls more slowly than the takeover floor', {timeout: 10_000}, async (t) => {
	const {server, makeClient} = await setup(t);
	const tabs = browser();
	const hidden = () => Object.assign(new FakeDocument(), {visibilityState: 'hidden'});
	// Both hidden, so the visible-tab rule stays out of it; the leader polls every 1.2 s.
	const a = makeClient({...tabs, document: hidden(), hiddenIntervalMs: 1200, random: () => 0});
	const b = makeClient({...tabs, document: hidden(), hiddenIntervalMs: 1200, random: () => 0});
	const job = server.addJob({status: 'running'});
	void a.watch(job.id).catch(() => {});
	await eventually(() => role(a, job.id) === 'leader');
	void b.watch(job.id).catch(() => {});
	await eventually(() => role(b, job.id) === 'follower');

	await sleep(3000);

	assert.equal(role(a, job.id), 'leader');
	assert.equal(role(b, job.id), 'follower');
	assert.equal(pollsBy(b), 0, 'the follower never polled');
});

test('a tab that comes into view takes over at once from a frozen hidden leader instead of waiting out its slow beat', async (t) => {
	const {server, makeClient} = await setup(t);
	const tabs = browser();
	const frozenTab = new FreezableTab(tabs.locks);
	const hidden = () => Object.assign(new FakeDocument(), {visibilityState: 'hidden'});
	// A hidden leader polling every 5 s announces 5 s of quiet: a silent follower would wait 15 s or more.
	const a = makeClient({...tabs, ...frozenTab.options(), document: hidden(), hiddenIntervalMs: 5000});
	const bDocument = hidden();
	const b = makeClient({...tabs, document: bDocument, hiddenIntervalMs: 5000});
	const job = server.addJob({status: 'running'});
	void a.watch(job.id).catch(() => {});
	await eventually(() => role(a, job.id) === 'leader');
	void b.watch(job.id).catch(() => {});
	await eventually(() => role(b, job.id) === 'follower');
	await eventually(() => a.pollLog().length >= 1, 'the leader\'s first poll');
	await sleep(100); // its beats are delivered: the last one announced five quiet seconds

	frozenTab.freeze();
	bDocument.setHidden(false);

	await eventually(() => role(b, job.id) === 'leader', 'the visible tab takes over', 3000);
	server.update(job.id, {progress: {percent: 80}});
	assert.equal((await nextEvent(b, 'progress', () => true, 2000)).progress.percent, 80);
});
