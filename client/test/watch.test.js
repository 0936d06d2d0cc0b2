import assert from 'node:assert/strict';
import test from 'node:test';
import {AbortError, DeadlineError, ProblemError} from '../src/index.js';
import {eventually, nextEvent, record, setup} from './helpers.js';

test('watch resolves with the full terminal job, result included', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient();
	const job = server.addJob();
	void server.play(job.id, [
		{status: 'running', progress: {percent: 50, stage: 'thinking'}},
		{status: 'succeeded', progress: {percent: 100}, result: {answer: 42}},
	], 30);

	const done = await client.watch(job.id);

	assert.equal(done.status, 'succeeded');
	assert.deepEqual(done.result, {answer: 42});
	assert.equal(done.links.self, `/api/ai/jobs/${job.id}`);
});

test('a failed or cancelled job resolves the watch too; the caller reads its status', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient();
	const job = server.addJob({status: 'failed', error: {code: 'agent_error', message: 'boom', retryable: false}});

	const done = await client.watch(job.id);

	assert.equal(done.status, 'failed');
	assert.equal(done.error.code, 'agent_error');
});

test('onUpdate sees every new version once and update/progress/done events fire', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient();
	const job = server.addJob();
	const updates = [];
	const progress = record(client, 'progress');
	const doneEvents = record(client, 'done');
	void server.play(job.id, [
		{status: 'running', progress: {percent: 10}},
		{progress: {percent: 60, stage: 'writing'}},
		{status: 'succeeded', progress: {percent: 100}},
	], 40);

	await client.watch(job.id, {onUpdate: (status) => updates.push(status.version)});

	assert.deepEqual(updates, [...new Set(updates)].sort((a, b) => a - b), 'versions arrive once, in order');
	assert.equal(updates.at(-1), 4);
	assert.ok(progress.some((detail) => detail.progress.percent === 100));
	assert.equal(doneEvents.length, 1);
	assert.equal(doneEvents[0].job.id, job.id);
});

test('steady polls send If-None-Match and unchanged jobs answer 304', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient();
	const job = server.addJob({status: 'running'});
	const watching = client.watch(job.id);

	await nextEvent(client, 'update');
	const log = () => client.pollLog().filter((entry) => entry.outcome === 'not-modified');
	await eventually(() => log().length >= 3, 'three 304 answers');

	const conditional = server.requests.filter((request) => request.path.endsWith('/status') && request.headers['if-none-match']);
	assert.ok(conditional.length >= 3);
	assert.equal(conditional[0].headers['if-none-match'], '"v1"');
	assert.ok(log().every((entry) => entry.httpStatus === 304));

	server.update(job.id, {status: 'succeeded'});
	assert.equal((await watching).status, 'succeeded');
});

test('a watch past its deadline rejects with a DeadlineError, which is a TimeoutError', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient({deadlineMs: 60});
	const job = server.addJob({status: 'running'});

	await assert.rejects(client.watch(job.id), (error) => {
		assert.ok(error instanceof DeadlineError);
		assert.equal(error.name, 'DeadlineError');
		assert.equal(error.jobId, job.id);
		return true;
	});
	assert.deepEqual(client.health().jobs, {});
});

test('a per-watch deadline overrides the client default', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient({deadlineMs: Number.POSITIVE_INFINITY});
	const job = server.addJob();

	await assert.rejects(client.watch(job.id, {deadlineMs: 40}), DeadlineError);
});

test('an unknown job fails the watch at once with the server problem, without retries', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient();
	const states = record(client, 'statechange');

	await assert.rejects(client.watch('job_missing'), (error) => {
		assert.ok(error instanceof ProblemError);
		assert.equal(error.status, 404);
		assert.equal(error.title, 'Not Found');
		return true;
	});
	assert.equal(server.count({path: /job_missing/}), 1);
	assert.deepEqual(states.map((detail) => detail.state), ['active', 'failed']);
});

test('unwatch rejects pending watches with AbortError and stops polling', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient();
	const job = server.addJob();
	const watching = client.watch(job.id);
	await nextEvent(client, 'update');

	assert.equal(client.unwatch(job.id), true);
	await assert.rejects(watching, AbortError);
	const count = server.count();
	await new Promise((resolve) => setTimeout(resolve, 60));
	assert.equal(server.count(), count);
	assert.equal(client.unwatch(job.id), false);
});

test('aborting the only watcher signal stops the watch; other watchers keep it alive', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient();
	const job = server.addJob();
	const first = new AbortController();
	const second = new AbortController();
	const a = client.watch(job.id, {signal: first.signal});
	const b = client.watch(job.id, {signal: second.signal});

	first.abort();
	await assert.rejects(a, {name: 'AbortError'});
	assert.ok(client.health().jobs[job.id], 'still watched for the second caller');
	second.abort();
	await assert.rejects(b, {name: 'AbortError'});
	assert.equal(client.health().jobs[job.id], undefined);
});

test('a late watcher gets the last known status right away', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient();
	const job = server.addJob({status: 'running'});
	void client.watch(job.id).catch(() => {});
	await nextEvent(client, 'update');

	const seen = await new Promise((resolve) => {
		void client.watch(job.id, {onUpdate: resolve}).catch(() => {});
	});
	assert.equal(seen.status, 'running');
});

test('a throwing onUpdate is reported as an error event and polling goes on', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient();
	const job = server.addJob();
	const errors = record(client, 'error');
	void server.play(job.id, [{status: 'succeeded'}], 30);

	const done = await client.watch(job.id, {onUpdate() {
		throw new Error('callback bug');
	}});

	assert.equal(done.status, 'succeeded');
	assert.ok(errors.some((detail) => detail.error.message === 'callback bug' && detail.final === false));
});
