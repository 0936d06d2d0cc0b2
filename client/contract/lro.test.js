/**
 * The contract, used unchanged by tools nobody here wrote, against the real service (gunicorn and a
 * Dramatiq worker on PostgreSQL and Redis, started by ../e2e/harness.js):
 *
 * - @azure/core-lro's generic HTTP poller follows submitted jobs to succeeded, failed and cancelled
 *   through the 202's Operation-Location, honouring Retry-After (docs/polling.md, "Generic pollers");
 * - the program in typed-client.ts, typed only by openapi-typescript's output and compiled by
 *   `tsc --strict` (check.sh does both first), submits, polls conditionally and reads a result.
 *
 * Environment: CONTRACT_REDIS_DB, the Redis database to use and flush (default 10: no other suite
 * uses it, so this file needs no lock).
 */
import assert from 'node:assert/strict';
import {spawn} from 'node:child_process';
import {once} from 'node:events';
import {existsSync} from 'node:fs';
import {after, before, test} from 'node:test';
import {fileURLToPath} from 'node:url';
import {createHttpPoller} from '@azure/core-lro';
import {Stack} from '../e2e/harness.js';

const TYPED_CLIENT = fileURLToPath(new URL('generated/js/typed-client.js', import.meta.url));
// Timers in two processes on a loaded machine: a poll may come this much earlier than the hint.
const TIMER_SLACK_MS = 50;

const stack = new Stack({stageDelayMs: 0, redisDb: Number(process.env.CONTRACT_REDIS_DB ?? '10')});
/** @type {string} */
let apiKey = '';
before(async () => {
	await stack.start();
	apiKey = await stack.createKey('contract');
}, {timeout: 180_000});
after(() => stack.close(), {timeout: 60_000});

/**
 * @typedef {{at: number, method: string, path: string, status: number, retryAfterS: number | null, state: unknown, body: unknown}} Exchange
 */

/**
 * One HTTP exchange in core-lro's terms, recorded in `log`.
 * @param {Exchange[]} log
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 * @returns {Promise<import('@azure/core-lro').OperationResponse<any>>}
 */
async function exchange(log, method, path, body) {
	const url = new URL(path, stack.baseUrl);
	const response = await fetch(url, {
		method,
		headers: {Authorization: `Bearer ${apiKey}`, ...(body === undefined ? {} : {'Content-Type': 'application/json'})},
		body: body === undefined ? undefined : JSON.stringify(body),
	});
	const text = await response.text();
	const parsed = text ? JSON.parse(text) : undefined;
	/** @type {Record<string, string>} */
	const headers = {};
	for (const [name, value] of response.headers) {
		headers[name.toLowerCase()] = value;
	}

	const retryAfter = headers['retry-after'];
	log.push({
		at: Date.now(), method, path: url.pathname, status: response.status,
		retryAfterS: retryAfter === undefined ? null : Number(retryAfter), state: parsed?.status, body: parsed,
	});
	return {flatResponse: parsed, rawResponse: {statusCode: response.status, request: {method, url: url.href, body}, headers, body: parsed}};
}

/**
 * A generic poller for one request, with core-lro's defaults except that it resolves (rather than
 * throws) on failed and canceled, so the test can read the final state either way.
 * @param {Exchange[]} log
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 */
function pollerFor(log, method, path, body) {
	return createHttpPoller({
		sendInitialRequest: () => exchange(log, method, path, body),
		sendPollRequest: (pollPath) => exchange(log, 'GET', pollPath),
	}, {resolveOnUnsuccessful: true});
}

/**
 * The status polls in `log`, after checking that each came no sooner than the previous poll's Retry-After.
 * @param {Exchange[]} log
 */
function assertRetryAfterHonoured(log) {
	const polls = log.filter((entry) => entry.method === 'GET' && entry.path.endsWith('/status'));
	let hintsFollowed = 0;
	for (let i = 0; i < log.length - 1; i += 1) {
		const hint = log[i].retryAfterS;
		const next = log[i + 1];
		// core-lro polls once right after the initial answer, then waits out each poll's Retry-After.
		if (hint !== null && log[i].path.endsWith('/status') && next.path.endsWith('/status')) {
			assert.ok(next.at - log[i].at >= hint * 1000 - TIMER_SLACK_MS,
				`poll ${i + 1} came ${next.at - log[i].at} ms after a Retry-After of ${hint} s`);
			hintsFollowed += 1;
		}
	}

	return Object.assign(polls, {hintsFollowed});
}

/** @param {Exchange[]} log */
function submitted(log) {
	const [first] = log;
	assert.equal(first.method, 'POST');
	assert.equal(first.status, 202);
	return first;
}

test('a generic poller follows a job to succeeded through Operation-Location, then reads its result', {timeout: 60_000}, async () => {
	/** @type {Exchange[]} */
	const log = [];
	const poller = pollerFor(log, 'POST', '/api/ai/jobs', {agent: 'echo', input: {payload: {n: 1}, steps: 5, delay_ms: 400}});
	const job = await poller.pollUntilDone();

	assert.equal(poller.operationState?.status, 'succeeded');
	submitted(log);
	const polls = assertRetryAfterHonoured(log);
	// Not "succeeded after one poll": it saw the job queued or running first.
	assert.ok(polls.length >= 2, `only ${polls.length} status polls`);
	assert.ok(polls.hintsFollowed >= 1, 'no poll followed a Retry-After');
	assert.ok(polls.slice(0, -1).every((entry) => entry.state === 'queued' || entry.state === 'running'));
	assert.equal(polls.at(-1)?.state, 'succeeded');
	// After success it fetched the job (Location) for the result.
	assert.equal(log.at(-1)?.path, `/api/ai/jobs/${job.id}`);
	assert.equal(job.status, 'succeeded');
	assert.deepEqual(job.result, {payload: {n: 1}, steps: 5});
});

test('a generic poller reports a permanently failing job as failed', {timeout: 60_000}, async () => {
	/** @type {Exchange[]} */
	const log = [];
	const poller = pollerFor(log, 'POST', '/api/ai/jobs', {agent: 'echo', input: {steps: 3, delay_ms: 300, fail: 'permanent'}});
	await poller.pollUntilDone();

	assert.equal(poller.operationState?.status, 'failed');
	submitted(log);
	const polls = assertRetryAfterHonoured(log);
	assert.ok(polls.length >= 2, `only ${polls.length} status polls`);
	assert.equal(polls.at(-1)?.state, 'failed');
});

test('generic pollers report a job cancelled while running as canceled, from the submit and from the cancel', {timeout: 60_000}, async () => {
	/** @type {Exchange[]} */
	const submitLog = [];
	const submitPoller = pollerFor(submitLog, 'POST', '/api/ai/jobs', {agent: 'echo', input: {steps: 20, delay_ms: 500}});
	await submitPoller.submitted();
	const jobId = /** @type {any} */ (submitted(submitLog).body).id;
	const following = submitPoller.pollUntilDone();

	// Cancel once the job runs, through its own 202 and Operation-Location.
	await waitForState(jobId, 'running');
	/** @type {Exchange[]} */
	const cancelLog = [];
	const cancelPoller = pollerFor(cancelLog, 'POST', `/api/ai/jobs/${jobId}/cancel`);
	await cancelPoller.pollUntilDone();
	await following;

	assert.equal(cancelPoller.operationState?.status, 'canceled');
	assert.equal(submitted(cancelLog).path, `/api/ai/jobs/${jobId}/cancel`);
	assertRetryAfterHonoured(cancelLog);
	assert.equal(submitPoller.operationState?.status, 'canceled');
	assertRetryAfterHonoured(submitLog);
	assert.equal(submitLog.filter((entry) => entry.path.endsWith('/status')).at(-1)?.state, 'cancelled');
});

/**
 * @param {string} jobId
 * @param {string} state
 */
async function waitForState(jobId, state) {
	for (let attempt = 0; attempt < 100; attempt += 1) {
		const response = await fetch(new URL(`/api/ai/jobs/${jobId}/status`, stack.baseUrl), {headers: {Authorization: `Bearer ${apiKey}`}});
		const body = /** @type {any} */ (await response.json());
		if (body.status === state) {
			return;
		}

		await new Promise((resolve) => {
			setTimeout(resolve, 100);
		});
	}

	throw new Error(`job ${jobId} never became ${state}`);
}

test('a program typed by openapi-typescript submits, polls conditionally and reads the result', {timeout: 60_000}, async () => {
	assert.ok(existsSync(TYPED_CLIENT), `${TYPED_CLIENT} is missing: check.sh compiles typed-client.ts first`);
	const child = spawn(process.execPath, [TYPED_CLIENT, stack.baseUrl, apiKey], {stdio: ['ignore', 'pipe', 'pipe']});
	let stdout = '';
	let stderr = '';
	child.stdout.on('data', (chunk) => {
		stdout += chunk;
	});
	child.stderr.on('data', (chunk) => {
		stderr += chunk;
	});
	const [code] = await once(child, 'close');
	assert.equal(code, 0, stderr);
	const summary = JSON.parse(stdout);
	assert.equal(summary.status, 'succeeded');
	assert.deepEqual(summary.result, {payload: {hello: 'world'}, steps: 4});
	assert.ok(summary.notModified >= 1, `no 304 in ${summary.polls} polls`);
	assert.equal(summary.pollAfterMs, null);
});
