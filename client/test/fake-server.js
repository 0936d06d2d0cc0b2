/**
 * An in-memory implementation of the AI jobs HTTP API on 127.0.0.1:0, with knobs for the behaviours the
 * client must survive: job progression, ETag/304, long-poll, batch, 429/503 with Retry-After, slow
 * responses and going down. It counts every request.
 */

import {createServer} from 'node:http';

const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);

/**
 * @typedef {object} Fault
 * @property {number} [status] answer with this status and a problem body
 * @property {number | string} [retryAfter] Retry-After header value
 * @property {boolean} [drop] destroy the connection instead of answering
 * @property {RegExp} [path] only requests whose path matches
 * @property {string} [method]
 * @property {Record<string, string>} [headers] extra response headers, such as RateLimit and RateLimit-Policy
 */

export class FakeServer {
	/** @type {Map<string, any>} */
	jobs = new Map();
	/** @type {Array<{method: string, path: string, query: Record<string, string>, headers: Record<string, string | string[] | undefined>, body: any, at: number}>} */
	requests = [];
	/** Extra latency added before answering any /api/ai request, in ms. */
	delayMs = 0;
	/** When true every connection is destroyed: the client sees a network error. */
	down = false;
	/** poll_after_ms the server suggests per status. */
	pollAfterMs = {queued: 20, running: 20};
	/**
	 * Custom answers: called first for every request; returning true means it answered itself.
	 * @type {((request: import('node:http').IncomingMessage, response: import('node:http').ServerResponse) => boolean) | null}
	 */
	intercept = null;
	/** Whether non-terminal status answers carry Retry-After (seconds, rounded up). */
	sendRetryAfter = true;
	apiKey;
	url = '';
	#sequence = 0;
	/** @type {Array<Fault & {remaining: number}>} */
	#faults = [];
	/** @type {Set<() => void>} */
	#waiters = new Set();
	/** @type {Set<ReturnType<typeof setTimeout>>} */
	#timers = new Set();
	#server;
	#closing = false;

	/** @param {{apiKey?: string}} [options] */
	constructor({apiKey = 'test-key'} = {}) {
		this.apiKey = apiKey;
		this.#server = createServer((request, response) => {
			this.#handle(request, response).catch((error) => {
				if (!response.headersSent) {
					this.#problem(response, 500, 'Internal Server Error', String(error));
				}
			});
		});
	}

	async start() {
		await new Promise((resolve) => {
			this.#server.listen(0, '127.0.0.1', () => resolve(undefined));
		});
		const address = /** @type {import('node:net').AddressInfo} */ (this.#server.address());
		this.url = `http://127.0.0.1:${address.port}`;
		return this;
	}

	async close() {
		this.#closing = true;
		for (const timer of this.#timers) {
			clearTimeout(timer);
		}

		this.#timers.clear();
		for (const wake of this.#waiters) {
			wake();
		}

		this.#server.closeAllConnections();
		await new Promise((resolve) => {
			this.#server.close(() => resolve(undefined));
		});
	}

	// ---- controls --------------------------------------------------------------------------------

	/** Add a job directly, bypassing POST. */
	addJob({agent = 'echo', input = {}, status = 'queued', requestId = null, ...rest} = {}) {
		this.#sequence += 1;
		const id = `job_${String(this.#sequence).padStart(4, '0')}`;
		const now = new Date().toISOString();
		const job = {
			id,
			agent,
			status,
			input,
			request_id: requestId,
			progress: {percent: 0, stage: null, message: null},
			result: null,
			error: null,
			attempts: 0,
			version: 1,
			created_at: now,
			started_at: status === 'queued' ? null : now,
			finished_at: TERMINAL.has(status) ? now : null,
			updated_at: now,
			estimated_completion_at: null,
			cancel_requested_at: null,
			links: {
				self: `/api/ai/jobs/${id}`,
				status: `/api/ai/jobs/${id}/status`,
				cancel: `/api/ai/jobs/${id}/cancel`,
				events: `/api/ai/jobs/${id}/events`,
			},
			...rest,
		};
		this.jobs.set(id, job);
		return job;
	}

	/** Change a job as the worker would; bumps its version and wakes long polls. */
	update(id, {progress, ...patch}) {
		const job = this.jobs.get(id);
		const now = new Date().toISOString();
		if (patch.status === 'running' && !job.started_at) {
			job.started_at = now;
		}

		if (TERMINAL.has(patch.status) && !job.finished_at) {
			job.finished_at = now;
		}

		Object.assign(job, patch);
		if (progress) {
			job.progress = {...job.progress, ...progress};
		}

		job.version += 1;
		job.updated_at = now;
		for (const wake of [...this.#waiters]) {
			wake();
		}

		return job;
	}

	/** Apply `steps` (patches) one every `everyMs`. */
	play(id, steps, everyMs = 20) {
		return new Promise((resolve) => {
			const next = (index) => {
				if (index >= steps.length) {
					resolve(this.jobs.get(id));
					return;
				}

				const timer = setTimeout(() => {
					this.#timers.delete(timer);
					this.update(id, steps[index]);
					next(index + 1);
				}, everyMs);
				this.#timers.add(timer);
			};

			next(0);
		});
	}

	/** Make the next `count` matching requests fail. */
	failNext(count, fault) {
		this.#faults.push({...fault, remaining: count});
	}

	clearFaults() {
		this.#faults = [];
	}

	/**
	 * @param {{method?: string, path?: RegExp}} [filter]
	 * @returns {number}
	 */
	count({method, path} = {}) {
		return this.requests.filter((request) => (!method || request.method === method) && (!path || path.test(request.path))).length;
	}

	// ---- routing ---------------------------------------------------------------------------------

	async #handle(request, response) {
		const url = new URL(request.url, 'http://localhost');
		const body = await readBody(request);
		const record = {
			method: request.method,
			path: url.pathname,
			query: Object.fromEntries(url.searchParams),
			headers: request.headers,
			body,
			at: Date.now(),
		};
		this.requests.push(record);

		if (this.down) {
			request.socket.destroy();
			return;
		}

		if (this.delayMs > 0) {
			await this.#sleep(this.delayMs);
		}

		if (this.intercept?.(request, response)) {
			return;
		}

		const fault = this.#takeFault(request.method, url.pathname);
		if (fault) {
			if (fault.drop) {
				request.socket.destroy();
				return;
			}

			const headers = {...(fault.retryAfter === undefined ? {} : {'retry-after': String(fault.retryAfter)}), ...fault.headers};
			this.#problem(response, fault.status ?? 503, fault.status === 429 ? 'Too Many Requests' : 'Service Unavailable', 'injected fault', headers);
			return;
		}

		if (!url.pathname.startsWith('/api/ai/')) {
			this.#problem(response, 404, 'Not Found', `no route ${url.pathname}`);
			return;
		}

		if (request.headers.authorization !== `Bearer ${this.apiKey}`) {
			this.#problem(response, 401, 'Unauthorized', 'missing or wrong bearer token');
			return;
		}

		const route = `${request.method} ${url.pathname}`;
		let match;
		if (route === 'POST /api/ai/jobs') {
			this.#create(response, body);
		} else if (route === 'GET /api/ai/jobs') {
			this.#list(response, url.searchParams);
		} else if (route === 'POST /api/ai/jobs/statuses') {
			await this.#statuses(response, body, waitSeconds(url));
		} else if ((match = /^GET \/api\/ai\/jobs\/([^/]+)\/status$/.exec(route))) {
			await this.#status(request, response, decodeURIComponent(match[1]), waitSeconds(url));
		} else if ((match = /^POST \/api\/ai\/jobs\/([^/]+)\/cancel$/.exec(route))) {
			this.#cancel(response, decodeURIComponent(match[1]));
		} else if ((match = /^GET \/api\/ai\/jobs\/([^/]+)$/.exec(route))) {
			const job = this.jobs.get(decodeURIComponent(match[1]));
			if (job) {
				this.#json(response, 200, job);
			} else {
				this.#notFound(response, match[1]);
			}
		} else {
			this.#problem(response, 405, 'Method Not Allowed', route);
		}
	}

	#create(response, body) {
		if (typeof body?.agent !== 'string' || body.agent === '') {
			this.#problem(response, 422, 'Unprocessable Content', 'invalid job', {}, {errors: {agent: ['required']}});
			return;
		}

		if (body.request_id) {
			const existing = [...this.jobs.values()].find((job) => job.request_id === body.request_id);
			if (existing) {
				if (existing.agent === body.agent && JSON.stringify(existing.input) === JSON.stringify(body.input)) {
					this.#json(response, 200, existing, {location: existing.links.self});
				} else {
					this.#problem(response, 409, 'Conflict', 'request_id already used with a different body');
				}

				return;
			}
		}

		const job = this.addJob({agent: body.agent, input: body.input ?? {}, requestId: body.request_id ?? null});
		this.#json(response, 202, job, {location: job.links.self, ...this.#retryAfterHeader(job)});
	}

	#list(response, params) {
		let jobs = [...this.jobs.values()];
		for (const key of ['status', 'agent', 'request_id']) {
			if (params.has(key)) {
				jobs = jobs.filter((job) => job[key] === params.get(key));
			}
		}

		const limit = Number(params.get('limit') ?? 20);
		const offset = Number(params.get('cursor') ?? 0);
		const page = jobs.slice(offset, offset + limit);
		const nextCursor = offset + limit < jobs.length ? String(offset + limit) : null;
		this.#json(response, 200, {jobs: page, next_cursor: nextCursor});
	}

	async #status(request, response, id, wait) {
		if (!this.jobs.has(id)) {
			this.#notFound(response, id);
			return;
		}

		const matches = () => etagMatches(request.headers['if-none-match'], etagOf(this.jobs.get(id)));
		if (matches() && wait > 0) {
			await this.#waitFor(() => !matches(), wait);
		}

		const job = this.jobs.get(id);
		const headers = {etag: etagOf(job), 'cache-control': 'no-cache', ...this.#retryAfterHeader(job)};
		if (matches()) {
			response.writeHead(304, headers);
			response.end();
			return;
		}

		this.#json(response, 200, this.#statusOf(job), headers);
	}

	async #statuses(response, body, wait) {
		const ids = body?.ids;
		if (!Array.isArray(ids) || ids.length === 0 || ids.length > 100) {
			this.#problem(response, 422, 'Unprocessable Content', 'ids must hold 1 to 100 job ids');
			return;
		}

		const versions = body.versions ?? {};
		const changed = () => ids.filter((id) => this.jobs.has(id) && versions[id] !== this.jobs.get(id).version);
		if (changed().length === 0 && wait > 0) {
			await this.#waitFor(() => changed().length > 0, wait);
		}

		const jobs = changed().map((id) => this.#statusOf(this.jobs.get(id)));
		const unchanged = ids.filter((id) => this.jobs.has(id) && !jobs.some((status) => status.id === id));
		const notFound = ids.filter((id) => !this.jobs.has(id));
		const hints = ids.filter((id) => this.jobs.has(id)).map((id) => this.#pollAfter(this.jobs.get(id))).filter((hint) => hint !== null);
		this.#json(response, 200, {jobs, unchanged, not_found: notFound, poll_after_ms: hints.length > 0 ? Math.min(...hints) : null});
	}

	#cancel(response, id) {
		const job = this.jobs.get(id);
		if (!job) {
			this.#notFound(response, id);
			return;
		}

		if (TERMINAL.has(job.status)) {
			this.#problem(response, 409, 'Conflict', `job ${id} is already ${job.status}`);
			return;
		}

		const patch = job.status === 'queued'
			? {status: 'cancelled', cancel_requested_at: new Date().toISOString()}
			: {cancel_requested_at: new Date().toISOString()};
		this.#json(response, 202, this.update(id, patch));
	}

	// ---- helpers ---------------------------------------------------------------------------------

	#statusOf(job) {
		const queued = [...this.jobs.values()].filter((other) => other.status === 'queued');
		return {
			id: job.id,
			status: job.status,
			progress: job.progress,
			version: job.version,
			created_at: job.created_at,
			started_at: job.started_at,
			finished_at: job.finished_at,
			updated_at: job.updated_at,
			estimated_completion_at: job.estimated_completion_at,
			queue_position: job.status === 'queued' ? queued.indexOf(job) : null, // how many are ahead, as the server counts
			error: job.error,
			poll_after_ms: this.#pollAfter(job),
		};
	}

	#pollAfter(job) {
		return TERMINAL.has(job.status) ? null : this.pollAfterMs[job.status];
	}

	#retryAfterHeader(job) {
		const ms = this.#pollAfter(job);
		return ms === null || !this.sendRetryAfter ? {} : {'retry-after': String(Math.ceil(ms / 1000))};
	}

	#takeFault(method, path) {
		const fault = this.#faults.find((candidate) => candidate.remaining > 0
			&& (!candidate.path || candidate.path.test(path))
			&& (!candidate.method || candidate.method === method));
		if (fault) {
			fault.remaining -= 1;
		}

		return fault;
	}

	/** Resolve when `done()` turns true (checked on every update) or after `seconds`. */
	#waitFor(done, seconds) {
		return new Promise((resolve) => {
			const finish = () => {
				clearTimeout(timer);
				this.#timers.delete(timer);
				this.#waiters.delete(check);
				resolve(undefined);
			};

			const check = () => {
				if (done() || this.#closing) {
					finish();
				}
			};

			const timer = setTimeout(finish, seconds * 1000);
			this.#timers.add(timer);
			this.#waiters.add(check);
		});
	}

	#sleep(ms) {
		return new Promise((resolve) => {
			const timer = setTimeout(() => {
				this.#timers.delete(timer);
				resolve(undefined);
			}, ms);
			this.#timers.add(timer);
		});
	}

	#json(response, status, body, headers = {}) {
		response.writeHead(status, {'content-type': 'application/json', ...headers});
		response.end(JSON.stringify(body));
	}

	#problem(response, status, title, detail, headers = {}, extra = {}) {
		response.writeHead(status, {'content-type': 'application/problem+json', ...headers});
		response.end(JSON.stringify({type: 'about:blank', title, status, detail, ...extra}));
	}

	#notFound(response, id) {
		this.#problem(response, 404, 'Not Found', `job ${id} does not exist`);
	}
}

/** Start a fake server; remember to close() it. */
export async function startFakeServer(options) {
	return new FakeServer(options).start();
}

function etagOf(job) {
	return `"v${job.version}"`;
}

function etagMatches(header, etag) {
	if (!header) {
		return false;
	}

	return header.split(',').map((part) => part.trim().replace(/^W\//, '')).includes(etag);
}

function waitSeconds(url) {
	const wait = Number(url.searchParams.get('wait') ?? 0);
	return Number.isFinite(wait) ? Math.min(Math.max(wait, 0), 30) : 0;
}

async function readBody(request) {
	const chunks = [];
	for await (const chunk of request) {
		chunks.push(chunk);
	}

	const text = Buffer.concat(chunks).toString('utf8');
	if (text === '') {
		return null;
	}

	try {
		return JSON.parse(text);
	} catch {
		return text;
	}
}
