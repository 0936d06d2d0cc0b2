import assert from 'node:assert/strict';
import test from 'node:test';
import {CircuitBreaker} from '../src/breaker.js';
import {eventually, nextEvent, record, setup} from './helpers.js';

function clock(start = 1_000) {
	const time = {now: start};
	return {time, now: () => time.now};
}

test('the breaker opens after failureThreshold consecutive failures', () => {
	const {now} = clock();
	const changes = [];
	const breaker = new CircuitBreaker({failureThreshold: 3, coolDownMs: 100, now, onChange: (state, previous) => changes.push([previous, state])});

	breaker.tryAcquire().failure();
	breaker.tryAcquire().failure();
	breaker.tryAcquire().success();
	breaker.tryAcquire().failure();
	breaker.tryAcquire().failure();
	assert.equal(breaker.state, 'closed', 'a success resets the count');
	breaker.tryAcquire().failure();

	assert.equal(breaker.state, 'open');
	assert.equal(breaker.consecutiveFailures, 3);
	assert.equal(breaker.tryAcquire(), null);
	assert.deepEqual(changes, [['closed', 'open']]);
});

test('after the cool-down exactly one half-open probe goes through', () => {
	const {time, now} = clock();
	const breaker = new CircuitBreaker({failureThreshold: 1, coolDownMs: 100, now});
	breaker.tryAcquire().failure();
	assert.equal(breaker.availableAt(), 1_100);

	time.now += 100;
	assert.equal(breaker.state, 'half-open');
	const probe = breaker.tryAcquire();
	assert.ok(probe);
	assert.equal(breaker.tryAcquire(), null, 'second request refused while the probe is out');
	assert.equal(breaker.availableAt(), Number.POSITIVE_INFINITY);
	probe.success();

	assert.equal(breaker.state, 'closed');
	assert.equal(breaker.availableAt(), 0);
});

test('a failed probe re-opens the breaker for another cool-down', () => {
	const {time, now} = clock();
	const breaker = new CircuitBreaker({failureThreshold: 1, coolDownMs: 100, now});
	breaker.tryAcquire().failure();
	time.now += 100;

	breaker.tryAcquire().failure();

	assert.equal(breaker.state, 'open');
	assert.equal(breaker.availableAt(), time.now + 100);
});

test('a released probe lets the next request probe instead', () => {
	const {time, now} = clock();
	const breaker = new CircuitBreaker({failureThreshold: 1, coolDownMs: 10, now});
	breaker.tryAcquire().failure();
	time.now += 10;
	const probe = breaker.tryAcquire();
	probe.release();
	probe.failure();

	assert.equal(breaker.state, 'half-open', 'a permit settles once');
	assert.ok(breaker.tryAcquire());
});

test('probeNow skips the rest of the cool-down; snapshots restore the state', () => {
	const {now} = clock();
	const breaker = new CircuitBreaker({failureThreshold: 1, coolDownMs: 10_000, now});
	breaker.tryAcquire().failure();
	const snapshot = breaker.snapshot();
	breaker.probeNow();
	assert.equal(breaker.state, 'half-open');

	const copy = new CircuitBreaker({failureThreshold: 1, coolDownMs: 10_000, now});
	copy.restore(snapshot);
	assert.equal(copy.state, 'open');
	assert.equal(copy.consecutiveFailures, 1);
	copy.restore({state: 'closed', failures: 0, openedAt: null});
	assert.equal(copy.state, 'closed');
});

test('a server going down opens the client breaker, and it closes again through a half-open probe', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient({breaker: {failureThreshold: 3, coolDownMs: 80}, retry: {maxAttempts: 100, baseDelayMs: 1, maxDelayMs: 5}});
	const changes = record(client, 'breakerchange');
	const job = server.addJob({status: 'running'});
	const watching = client.watch(job.id);
	await nextEvent(client, 'update');

	server.down = true;
	await nextEvent(client, 'breakerchange', (detail) => detail.state === 'open');
	const health = client.health();
	assert.equal(health.breaker, 'open');
	assert.ok(health.consecutiveFailures >= 3);
	const refusedAt = server.count();
	await assert.rejects(client.get(job.id), {name: 'CircuitOpenError'});
	assert.equal(server.count(), refusedAt, 'refused locally');

	server.down = false;
	server.update(job.id, {status: 'succeeded'});
	assert.equal((await watching).status, 'succeeded');
	await eventually(() => client.health().breaker === 'closed');
	const states = changes.map((detail) => detail.state);
	assert.deepEqual(states.slice(0, 1), ['open']);
	assert.ok(states.includes('half-open'));
	assert.equal(states.at(-1), 'closed');
});

test('while open, polls wait for the cool-down instead of hitting the server', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient({breaker: {failureThreshold: 1, coolDownMs: 300}, retry: {maxAttempts: 100, baseDelayMs: 1, maxDelayMs: 2}});
	const job = server.addJob({status: 'running'});
	server.failNext(1, {status: 500});
	void client.watch(job.id).catch(() => {});
	await nextEvent(client, 'breakerchange', (detail) => detail.state === 'open');
	const openedAt = Date.now();

	await eventually(() => server.count() >= 2, 'the probe');

	assert.ok(server.requests[1].at - openedAt >= 250, 'the probe waited for the cool-down');
	assert.ok(client.health().jobs[job.id].nextPollAt !== null);
});
