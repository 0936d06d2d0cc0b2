import assert from 'node:assert/strict';
import test from 'node:test';
import {createJobsClient, DEFAULTS} from '../src/index.js';
import {resolveOptions} from '../src/options.js';

const BASE = {baseUrl: 'http://127.0.0.1:9', apiKey: 'k', storage: null, document: null, window: null, locks: null, BroadcastChannel: null};

/** Assert that `options` are refused with a TypeError naming `name`. */
function refuses(options, name) {
	assert.throws(() => createJobsClient(/** @type {any} */ ({...BASE, ...options})), (error) => {
		assert.ok(error instanceof TypeError, `${name}: ${error}`);
		assert.match(error.message, new RegExp(`"${name.replace('.', '\\.')}"`), error.message);
		return true;
	});
}

test('defaults are filled in with units in their names', () => {
	const options = resolveOptions({...BASE, baseUrl: 'https://jobs.example/prefix///'});

	assert.equal(options.baseUrl, 'https://jobs.example/prefix');
	assert.deepEqual(options.intervalMs, {queued: 2000, running: 1000});
	assert.equal(options.hiddenIntervalMs, 30_000);
	assert.equal(options.jitterRatio, 0.1);
	assert.deepEqual(options.retry, DEFAULTS.retry);
	assert.deepEqual(options.breaker, {failureThreshold: 5, coolDownMs: 30_000});
	assert.deepEqual(options.batch, {minJobs: 2, maxJobs: 100, windowMs: 250});
	assert.equal(options.longPoll, false);
	assert.equal(options.waitSeconds, 25);
	assert.equal(options.fetch, globalThis.fetch);
	assert.equal(options.getToken(), 'k');
});

test('nested groups merge key by key, and batch: false turns batching off', () => {
	const options = resolveOptions({...BASE, retry: {maxAttempts: Number.POSITIVE_INFINITY}, intervalMs: {running: 10}, batch: false});

	assert.equal(options.retry.maxAttempts, Number.POSITIVE_INFINITY);
	assert.equal(options.retry.baseDelayMs, 500);
	assert.deepEqual(options.intervalMs, {queued: 2000, running: 10});
	assert.equal(options.batch, null);
});

test('browser globals are used by default when present', () => {
	const options = resolveOptions({baseUrl: 'http://x.test', apiKey: 'k'});

	assert.equal(options.BroadcastChannel, globalThis.BroadcastChannel);
	assert.equal(options.document, null, 'Node has no document');
	assert.equal(options.window, null, 'Node globalThis is not an EventTarget');
	assert.equal(options.storage, null, 'Node 20 has no localStorage');
});

test('every bad option is refused up front with a TypeError naming it', () => {
	refuses({baseUrl: undefined}, 'baseUrl');
	refuses({baseUrl: 'not a url'}, 'baseUrl');
	refuses({baseUrl: 'ftp://x.test'}, 'baseUrl');
	refuses({apiKey: ''}, 'apiKey');
	refuses({apiKey: undefined}, 'apiKey');
	refuses({apiKey: undefined, getToken: 'token'}, 'getToken');
	refuses({fetch: 42}, 'fetch');
	refuses({storage: {getItem() {}}}, 'storage');
	refuses({namespace: ''}, 'namespace');
	refuses({intervalMs: {queued: -1}}, 'intervalMs.queued');
	refuses({intervalMs: {running: '1s'}}, 'intervalMs.running');
	refuses({intervalMs: 5}, 'intervalMs');
	refuses({minIntervalMs: Number.NaN}, 'minIntervalMs');
	refuses({minIntervalMs: 500, maxIntervalMs: 100}, 'maxIntervalMs');
	refuses({hiddenIntervalMs: Number.POSITIVE_INFINITY}, 'hiddenIntervalMs');
	refuses({jitterRatio: 1}, 'jitterRatio');
	refuses({requestTimeoutMs: 0}, 'requestTimeoutMs');
	refuses({deadlineMs: -1}, 'deadlineMs');
	refuses({retry: {maxAttempts: 0}}, 'retry.maxAttempts');
	refuses({retry: {maxAttempts: 1.5}}, 'retry.maxAttempts');
	refuses({retry: {baseDelayMs: -1}}, 'retry.baseDelayMs');
	refuses({retry: {maxDelayMs: null}}, 'retry.maxDelayMs');
	refuses({retry: {maxRetryAfterMs: '5'}}, 'retry.maxRetryAfterMs');
	refuses({breaker: {failureThreshold: 0}}, 'breaker.failureThreshold');
	refuses({breaker: {coolDownMs: -1}}, 'breaker.coolDownMs');
	refuses({batch: true}, 'batch');
	refuses({batch: {minJobs: 1}}, 'batch.minJobs');
	refuses({batch: {maxJobs: 101}}, 'batch.maxJobs');
	refuses({batch: {windowMs: -1}}, 'batch.windowMs');
	refuses({longPoll: 'yes'}, 'longPoll');
	refuses({waitSeconds: 31}, 'waitSeconds');
	refuses({waitSeconds: 0}, 'waitSeconds');
	refuses({pollLogSize: 0}, 'pollLogSize');
	refuses({document: {}}, 'document');
	refuses({window: 'window'}, 'window');
	refuses({locks: {}}, 'locks');
	refuses({BroadcastChannel: {}}, 'BroadcastChannel');
	refuses({random: 4}, 'random');
});

test('unknown options and conflicting credentials are refused', () => {
	assert.throws(() => createJobsClient(/** @type {any} */ ({...BASE, intervalMS: 5})), /unknown option "intervalMS"/);
	assert.throws(() => createJobsClient(/** @type {any} */ ({...BASE, retry: {limit: 2}})), /unknown option "retry\.limit"/);
	assert.throws(() => createJobsClient(/** @type {any} */ ({...BASE, getToken: () => 't'})), /either option "apiKey" or option "getToken"/);
	assert.throws(() => createJobsClient(/** @type {any} */ (null)), /option "options" must be an object, got null/);
	assert.throws(() => createJobsClient(/** @type {any} */ ([])), /got an array/);
});
