import assert from 'node:assert/strict';
import test from 'node:test';
import {
	AbortError,
	CircuitOpenError,
	DeadlineError,
	HTTPError,
	isRetryableError,
	JobsClientError,
	NetworkError,
	ProblemError,
	TimeoutError,
} from '../src/index.js';
import {nextEvent, setup} from './helpers.js';

const init = {method: 'GET', url: 'http://x.test/a', headers: new Headers(), body: null, retryAfterMs: null};

test('each error class names itself and shares one base class', () => {
	const errors = [
		new HTTPError({...init, status: 500}),
		new ProblemError({...init, status: 422, problem: {title: 'Unprocessable', detail: 'bad agent', errors: {agent: ['required']}}}),
		new NetworkError('GET', 'http://x.test', new TypeError('fetch failed')),
		new TimeoutError('slow', 10),
		new DeadlineError('job_1', Date.UTC(2026, 0, 1), 1000),
		new CircuitOpenError(Date.UTC(2026, 0, 1)),
		new CircuitOpenError(Number.POSITIVE_INFINITY),
		new AbortError('stopped'),
	];

	assert.deepEqual(errors.map((error) => error.name), [
		'HTTPError', 'ProblemError', 'NetworkError', 'TimeoutError', 'DeadlineError', 'CircuitOpenError', 'CircuitOpenError', 'AbortError',
	]);
	assert.ok(errors.every((error) => error instanceof JobsClientError));
	assert.equal(errors[1].detail, 'bad agent');
	assert.deepEqual(errors[1].errors, {agent: ['required']});
	assert.match(errors[1].message, /Unprocessable: bad agent \(422 GET/);
	assert.match(errors[4].message, /2026-01-01T00:00:00.000Z/);
	assert.match(errors[6].message, /half-open/);
	assert.equal(new ProblemError({...init, status: 400, problem: {}}).type, 'about:blank');
});

test('network errors, timeouts, 408, 429 and 5xx are retryable; other 4xx and deadlines are final', () => {
	assert.equal(isRetryableError(new NetworkError('GET', 'u', null)), true);
	assert.equal(isRetryableError(new TimeoutError('slow', 1)), true);
	for (const status of [408, 429, 500, 502, 503, 504]) {
		assert.equal(isRetryableError(new HTTPError({...init, status})), true, String(status));
	}

	for (const status of [400, 401, 403, 404, 409, 422]) {
		assert.equal(isRetryableError(new HTTPError({...init, status})), false, String(status));
	}

	assert.equal(isRetryableError(new DeadlineError('job', 0, 1)), false);
	assert.equal(isRetryableError(new Error('bug')), false);
});

test('a non-JSON error page becomes an HTTPError with the text body', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient({retry: {maxAttempts: 1}});
	server.intercept = (request, response) => {
		response.writeHead(502, {'content-type': 'text/html'});
		response.end('<h1>Bad gateway</h1>');
		return true;
	};

	await assert.rejects(client.get('job_1'), (error) => {
		assert.equal(error.name, 'HTTPError');
		assert.equal(error.status, 502);
		assert.equal(error.body, '<h1>Bad gateway</h1>');
		return true;
	});
});

test('a 200 that is not JSON (a captive portal page) is refused, not trusted', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient();
	server.intercept = (request, response) => {
		response.writeHead(200, {'content-type': 'text/html'});
		response.end('<html>log in to the wifi</html>');
		return true;
	};

	await assert.rejects(client.list(), {name: 'HTTPError', message: /Expected a JSON object/});
});

test('a status answer without the fields the scheduler needs is ignored', async (t) => {
	const {server, makeClient} = await setup(t);
	const client = makeClient();
	const job = server.addJob({status: 'running'});
	let junk = 2;
	server.intercept = (request, response) => {
		if (junk > 0 && request.url.endsWith('/status')) {
			junk -= 1;
			response.writeHead(200, {'content-type': 'application/json'});
			response.end('{"hello": "proxy"}');
			return true;
		}

		return false;
	};
	const watching = client.watch(job.id);

	const update = await nextEvent(client, 'update');
	assert.equal(update.status.version, 1);
	server.update(job.id, {status: 'succeeded'});
	assert.equal((await watching).status, 'succeeded');
});
