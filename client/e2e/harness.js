/**
 * The real service for browser tests, in its production shape: a throwaway PostgreSQL database, a Redis
 * database, gunicorn and a Dramatiq worker started from the project's virtualenv, and Debian's Chromium
 * driven through playwright-core. Everything started here is stopped (process groups killed, database
 * dropped) when the stack closes, and also when the test process exits early.
 *
 * Environment:
 *   E2E_PYTHON        the Python with the project installed (default <repo>/.venv/bin/python, else $PYTHON)
 *   E2E_POSTGRES_URL  an admin connection used to create and drop the database
 *                     (default postgresql://postgres@127.0.0.1:5432/postgres)
 *   E2E_REDIS_URL     Redis server without a database number (default redis://127.0.0.1:6379)
 *   E2E_CHROMIUM      the browser (default /usr/bin/chromium; tests/ensure-chromium.sh installs it)
 *   E2E_LOG_DIR       where process output is kept (default a fresh folder under the system temp dir)
 */

import {spawn, spawnSync} from 'node:child_process';
import {randomBytes} from 'node:crypto';
import {once} from 'node:events';
import {createWriteStream, existsSync, mkdirSync, mkdtempSync, rmSync} from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {setTimeout as sleep} from 'node:timers/promises';
import {fileURLToPath} from 'node:url';
import {chromium} from 'playwright-core';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

const POSTGRES_URL = process.env.E2E_POSTGRES_URL || 'postgresql://postgres@127.0.0.1:5432/postgres';
const REDIS_SERVER_URL = (process.env.E2E_REDIS_URL || 'redis://127.0.0.1:6379').replace(/\/+$/, '');
const CHROMIUM = process.env.E2E_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
	'--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
	'--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const STARTUP_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 10_000;

/** The Python that has the project installed. */
export function pythonPath() {
	if (process.env.E2E_PYTHON) {
		return process.env.E2E_PYTHON;
	}

	const venvPython = path.join(REPO_ROOT, '.venv', 'bin', 'python');
	return existsSync(venvPython) || !process.env.PYTHON ? venvPython : process.env.PYTHON;
}

// ---- cleanup even when the test process dies -------------------------------------------------------

/** Process groups and databases still alive; the exit hook below kills and drops whatever is left. */
const live = {groups: new Set(), databases: new Set()};

function dropDatabaseSync(name) {
	spawnSync(pythonPath(), ['-c', DROP_DATABASE_PY, POSTGRES_URL, name], {stdio: 'ignore', timeout: 15_000});
}

process.once('exit', () => {
	for (const pid of live.groups) {
		killGroup(pid, 'SIGKILL');
	}

	for (const name of live.databases) {
		dropDatabaseSync(name);
	}
});

for (const signal of ['SIGINT', 'SIGTERM']) {
	process.once(signal, () => process.exit(130));
}

function killGroup(pid, signal) {
	try {
		process.kill(-pid, signal);
	} catch {
		// Already gone.
	}
}

// ---- small helpers ---------------------------------------------------------------------------------

const CREATE_DATABASE_PY = `
import sys, psycopg
with psycopg.connect(sys.argv[1], autocommit=True, connect_timeout=5) as conn:
    conn.execute('CREATE DATABASE "%s"' % sys.argv[2])
`;
const DROP_DATABASE_PY = `
import sys, psycopg
with psycopg.connect(sys.argv[1], autocommit=True, connect_timeout=5) as conn:
    conn.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % sys.argv[2])
`;
const FLUSH_REDIS_PY = `
import sys, redis
redis.Redis.from_url(sys.argv[1], socket_connect_timeout=5).flushdb()
`;

/**
 * Run the project's Python to completion; resolves with stdout, rejects with stderr in the message.
 * @param {string[]} args
 * @param {NodeJS.ProcessEnv} env
 */
async function runPython(args, env = process.env) {
	const child = spawn(pythonPath(), args, {cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe']});
	let stdout = '';
	let stderr = '';
	child.stdout.on('data', (chunk) => {
		stdout += chunk;
	});
	child.stderr.on('data', (chunk) => {
		stderr += chunk;
	});
	const [code] = await once(child, 'close');
	if (code !== 0) {
		throw new Error(`${pythonPath()} ${args.join(' ').slice(0, 80)} exited with ${code}:\n${stderr.trim()}`);
	}

	return stdout;
}

/**
 * The app's SQLAlchemy URL of database `name` on the admin connection's server, as the same user.
 * @param {string} name
 */
function databaseUrl(name) {
	const admin = new URL(POSTGRES_URL);
	const password = admin.password ? `:${admin.password}` : '';
	return `postgresql+psycopg://${admin.username || 'postgres'}${password}@${admin.host}/${name}`;
}

/** A TCP port nobody listens on right now. */
async function freePort() {
	const server = net.createServer();
	server.listen(0, '127.0.0.1');
	await once(server, 'listening');
	const {port} = /** @type {net.AddressInfo} */ (server.address());
	server.close();
	await once(server, 'close');
	return port;
}

/**
 * Resolve when `check` returns a truthy value; poll every `intervalMs`.
 * @template T
 * @param {() => T | Promise<T>} check
 * @param {{timeoutMs?: number, intervalMs?: number, what?: string}} [options]
 * @returns {Promise<T>}
 */
export async function waitFor(check, {timeoutMs = 15_000, intervalMs = 50, what = 'condition'} = {}) {
	const deadline = Date.now() + timeoutMs;
	for (;;) {
		const value = await check();
		if (value) {
			return value;
		}

		if (Date.now() > deadline) {
			throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
		}

		await sleep(intervalMs);
	}
}

// ---- the service -----------------------------------------------------------------------------------

/**
 * One request line from gunicorn's access log (format in backend/gunicorn_conf.py).
 * @typedef {{at: number, method: string, path: string, status: number}} AccessLogEntry
 */

const ACCESS_LINE = /"([A-Z]+) (\S+) HTTP\/[\d.]+" (\d{3}) /;

/** A long-running child in its own process group, with its output kept in a log file. */
class Service {
	/** @type {import('node:child_process').ChildProcess | null} */
	child = null;
	/** @type {Promise<unknown> | null} */
	exited = null;

	/**
	 * @param {string} name
	 * @param {string[]} args
	 * @param {NodeJS.ProcessEnv} env
	 * @param {string} logDir
	 * @param {(line: string) => void} [onLine] called with each line of stdout and stderr
	 */
	constructor(name, args, env, logDir, onLine = () => {}) {
		this.name = name;
		this.args = args;
		this.env = env;
		this.logPath = path.join(logDir, `${name}.log`);
		this.onLine = onLine;
	}

	start() {
		const log = createWriteStream(this.logPath, {flags: 'a'});
		const child = spawn(pythonPath(), this.args, {cwd: REPO_ROOT, env: this.env, detached: true, stdio: ['ignore', 'pipe', 'pipe']});
		live.groups.add(child.pid);
		this.child = child;
		this.exited = once(child, 'exit').then(() => {
			live.groups.delete(child.pid);
			log.end();
		});
		for (const stream of [child.stdout, child.stderr]) {
			let pending = '';
			stream.on('data', (chunk) => {
				log.write(chunk);
				pending += chunk;
				const lines = pending.split('\n');
				pending = lines.pop() ?? '';
				for (const line of lines) {
					this.onLine(line);
				}
			});
		}
	}

	get running() {
		return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
	}

	/** Kill the whole process group (gunicorn's master and workers, Dramatiq's processes). */
	async stop(signal = 'SIGKILL') {
		if (!this.child || !this.running) {
			return;
		}

		killGroup(this.child.pid, signal);
		const stopped = await Promise.race([this.exited.then(() => true), sleep(STOP_TIMEOUT_MS).then(() => false)]);
		if (!stopped) {
			killGroup(this.child.pid, 'SIGKILL');
			await this.exited;
		}
	}
}

/**
 * The API (gunicorn) and a worker (Dramatiq) over a throwaway database, with the API's access log parsed
 * so tests can count the requests that reached the server.
 */
export class Stack {
	/** @type {AccessLogEntry[]} */
	requests = [];
	/** @type {Set<() => void>} */
	#requestListeners = new Set();

	/**
	 * @param {{stageDelayMs: number, redisDb: number}} options
	 */
	constructor({stageDelayMs, redisDb}) {
		this.stageDelayMs = stageDelayMs;
		this.databaseName = `ai_jobs_e2e_${process.pid}_${randomBytes(4).toString('hex')}`;
		this.redisUrl = `${REDIS_SERVER_URL}/${redisDb}`;
		this.logDir = process.env.E2E_LOG_DIR
			? path.join(process.env.E2E_LOG_DIR, this.databaseName)
			: mkdtempSync(path.join(os.tmpdir(), 'ai-jobs-e2e-'));
		mkdirSync(this.logDir, {recursive: true});
		const env = {...process.env};
		for (const name of ['DEV_API_KEY', 'CORS_ALLOWED_ORIGINS', 'ENABLED_AGENTS', 'BIND', 'PORT']) {
			delete env[name];
		}

		this.env = {
			...env,
			PYTHONUNBUFFERED: '1',
			DATABASE_URL: databaseUrl(this.databaseName),
			REDIS_URL: this.redisUrl,
			CANVAS_STAGE_DELAY_MS: String(stageDelayMs),
			// Tests poll hard from several tabs; the per-key poll limit is not what they are about.
			RATE_LIMIT_POLL: '100000/minute',
			RATE_LIMIT_DEFAULT: '100000/minute',
		};
	}

	/** Create the database, migrate it, and start the worker and the API. */
	async start() {
		if (!existsSync(pythonPath())) {
			throw new Error(`no Python at ${pythonPath()}: run \`make venv\` in the repository or set E2E_PYTHON`);
		}

		await runPython(['-c', CREATE_DATABASE_PY, POSTGRES_URL, this.databaseName]);
		live.databases.add(this.databaseName);
		await runPython(['-c', FLUSH_REDIS_PY, this.redisUrl]);
		await runPython(['-m', 'flask', '--app', 'wsgi', 'db', 'upgrade'], this.env);
		this.port = await freePort();
		this.baseUrl = `http://127.0.0.1:${this.port}`;

		let workerReady = false;
		this.worker = new Service('worker', ['-m', 'dramatiq', 'backend.worker', '-p', '1', '-t', '2'], this.env, this.logDir, (line) => {
			workerReady ||= line.includes('ready for action');
		});
		this.api = new Service('api', ['-m', 'gunicorn', '-c', 'python:backend.gunicorn_conf', 'wsgi:app'], {
			...this.env,
			BIND: `127.0.0.1:${this.port}`,
			WEB_WORKERS: '1',
			WEB_THREADS: '32',
		}, this.logDir, (line) => this.#onAccessLine(line));
		this.worker.start();
		await Promise.all([
			waitFor(() => {
				if (!this.worker.running) {
					throw new Error(`the worker exited during startup; see ${this.worker.logPath}`);
				}

				return workerReady;
			}, {timeoutMs: STARTUP_TIMEOUT_MS, intervalMs: 100, what: 'the Dramatiq worker'}),
			this.startApi(),
		]);
	}

	/** Start gunicorn (again) on this stack's port and wait until it reports ready. */
	async startApi() {
		this.api.start();
		await waitFor(async () => {
			if (!this.api.running) {
				throw new Error(`gunicorn exited during startup; see ${this.api.logPath}`);
			}

			try {
				const response = await fetch(`${this.baseUrl}/health/ready`, {signal: AbortSignal.timeout(2000)});
				return response.ok;
			} catch {
				return false;
			}
		}, {timeoutMs: STARTUP_TIMEOUT_MS, intervalMs: 100, what: 'gunicorn to answer /health/ready'});
	}

	/** Kill gunicorn outright (master and workers), as a crash or a lost host would. */
	async stopApi() {
		await this.api.stop('SIGKILL');
	}

	/**
	 * A fresh API key for `owner`: owners see only their own jobs, so each test gets its own list.
	 * @param {string} owner
	 */
	async createKey(owner) {
		const output = await runPython(['-m', 'flask', '--app', 'wsgi', 'keys', 'create', '--owner', owner], this.env);
		const key = output.trim().split('\n').at(-1)?.trim();
		if (!key) {
			throw new Error(`keys create printed no key:\n${output}`);
		}

		return key;
	}

	/**
	 * Poll requests for one job that reached the API since `since` (epoch ms): single status polls for
	 * it, and batch polls (whose ids are in the body, which the log does not show) when `batches` is set.
	 * @param {string} jobId
	 * @param {{since?: number, until?: number, batches?: boolean}} [options]
	 */
	pollRequests(jobId, {since = 0, until = Number.POSITIVE_INFINITY, batches = true} = {}) {
		const statusPath = `/api/ai/jobs/${jobId}/status`;
		return this.requests.filter((entry) => entry.at >= since && entry.at <= until
			&& ((entry.method === 'GET' && entry.path === statusPath)
				|| (batches && entry.method === 'POST' && entry.path === '/api/ai/jobs/statuses')));
	}

	/**
	 * Resolve with the first logged request after `since` that `accept` takes.
	 * @param {(entry: AccessLogEntry) => boolean} accept
	 * @param {{since?: number, timeoutMs?: number, what?: string}} [options]
	 */
	async nextRequest(accept, {since = Date.now(), timeoutMs = 15_000, what = 'a request'} = {}) {
		const find = () => this.requests.find((entry) => entry.at >= since && accept(entry));
		let listener = () => {};
		try {
			return find() ?? await new Promise((resolve, reject) => {
				const timer = setTimeout(() => reject(new Error(`no ${what} reached the API within ${timeoutMs} ms`)), timeoutMs);
				listener = () => {
					const found = find();
					if (found) {
						clearTimeout(timer);
						resolve(found);
					}
				};

				this.#requestListeners.add(listener);
			});
		} finally {
			this.#requestListeners.delete(listener);
		}
	}

	/** Stop the processes, drop the database and empty the Redis database. */
	async close() {
		await Promise.all([this.api?.stop('SIGTERM'), this.worker?.stop('SIGTERM')]);
		if (live.databases.has(this.databaseName)) {
			await runPython(['-c', DROP_DATABASE_PY, POSTGRES_URL, this.databaseName]);
			live.databases.delete(this.databaseName);
		}

		await runPython(['-c', FLUSH_REDIS_PY, this.redisUrl]).catch(() => {});
	}

	/** @param {string} line */
	#onAccessLine(line) {
		const match = ACCESS_LINE.exec(line);
		if (!match) {
			return;
		}

		this.requests.push({at: Date.now(), method: match[1], path: match[2], status: Number(match[3])});
		for (const listener of this.#requestListeners) {
			listener();
		}
	}
}

/**
 * Start a stack for a test file; `after` stops it even when a test failed.
 * @param {{before: Function, after: Function}} hooks node:test's before/after
 * @param {{stageDelayMs: number, redisDb: number}} options
 * @returns {Stack} filled in once `before` has run
 */
export function useStack({before, after}, options) {
	const stack = new Stack(options);
	before(() => stack.start(), {timeout: 120_000});
	after(() => stack.close(), {timeout: 60_000});
	return stack;
}

/**
 * The embedded mode as `make run` starts it: `flask serve` with its in-process worker on a throwaway SQLite
 * file, and the development key it makes and prints. No PostgreSQL, no Redis.
 */
export class EmbeddedServer {
	/** @param {{stageDelayMs: number}} options */
	constructor({stageDelayMs}) {
		this.directory = mkdtempSync(path.join(os.tmpdir(), 'ai-jobs-e2e-embedded-'));
		const env = {...process.env};
		for (const name of ['DEV_API_KEY', 'DATABASE_URL', 'REDIS_URL', 'ENABLED_AGENTS', 'CORS_ALLOWED_ORIGINS']) {
			delete env[name];
		}

		this.env = {
			...env,
			PYTHONUNBUFFERED: '1',
			DATABASE_URL: `sqlite:///${path.join(this.directory, 'jobs.sqlite3')}`,
			REDIS_URL: '',
			DEV_API_KEY_FILE: path.join(this.directory, 'instance', 'dev-api-key'),
			CANVAS_STAGE_DELAY_MS: String(stageDelayMs),
		};
		/** @type {string | null} */
		this.apiKey = null;
	}

	async start() {
		await runPython(['-m', 'flask', '--app', 'wsgi', 'db', 'upgrade'], this.env);
		this.port = await freePort();
		this.baseUrl = `http://127.0.0.1:${this.port}`;
		await this.#launch();
	}

	/**
	 * Stop the server and start it again on the same port and database, with `env` added (a new DEV_API_KEY).
	 * @param {NodeJS.ProcessEnv} env
	 */
	async restart(env = {}) {
		await this.server?.stop('SIGTERM');
		Object.assign(this.env, env);
		this.apiKey = null;
		await this.#launch();
	}

	async #launch() {
		this.server = new Service('serve', ['-m', 'flask', '--app', 'wsgi', 'serve', '--port', String(this.port)], this.env, this.directory, (line) => {
			const printed = /^Development API key \(owner '[^']+'\): (\S+)$/.exec(line);
			if (printed) {
				this.apiKey = printed[1];
			}
		});
		this.server.start();
		await waitFor(() => {
			if (!this.server.running) {
				throw new Error(`flask serve exited during startup; see ${this.server.logPath}`);
			}

			return this.apiKey;
		}, {timeoutMs: STARTUP_TIMEOUT_MS, intervalMs: 100, what: 'flask serve to print its development key'});
	}

	/**
	 * A fresh key of `scope` ("jobs" or "ops") for `owner`, created with the CLI as an operator would.
	 * @param {string} owner
	 * @param {{scope?: string}} [options]
	 */
	async createKey(owner, {scope = 'jobs'} = {}) {
		const output = await runPython(['-m', 'flask', '--app', 'wsgi', 'keys', 'create', '--owner', owner, '--scope', scope], this.env);
		const key = output.trim().split('\n').at(-1)?.trim();
		if (!key) {
			throw new Error(`keys create printed no key:\n${output}`);
		}

		return key;
	}

	async close() {
		await this.server?.stop('SIGTERM');
		rmSync(this.directory, {recursive: true, force: true});
	}
}

/**
 * Start an embedded server for a test file; `after` stops it even when a test failed.
 * @param {{before: Function, after: Function}} hooks node:test's before/after
 * @param {{stageDelayMs: number}} options
 */
export function useEmbeddedServer({before, after}, options) {
	const server = new EmbeddedServer(options);
	before(() => server.start(), {timeout: 120_000});
	after(() => server.close(), {timeout: 60_000});
	return server;
}

// ---- the browser -----------------------------------------------------------------------------------

/** The browser window the tests use; a "screen" in the layout checks is this tall. */
export const VIEWPORT = {width: 1280, height: 900};

/**
 * Launch Chromium (its own fresh profile, which playwright-core creates and deletes) with one context,
 * so pages of a test share localStorage, Web Locks and BroadcastChannel as tabs do. Closed after the test.
 * Page errors fail the test at the end.
 * @param {import('node:test').TestContext} t
 */
export async function openBrowser(t) {
	const browser = await chromium.launch({executablePath: CHROMIUM, args: CHROMIUM_ARGS});
	const context = await browser.newContext({viewport: VIEWPORT});
	/** @type {string[]} */
	const pageErrors = [];
	/** @type {string[]} */
	const consoleErrors = [];
	context.on('page', (page) => {
		page.on('pageerror', (error) => pageErrors.push(`${error.name}: ${error.message}`));
		// Includes what the browser itself reports there, such as a resource that answered 404.
		page.on('console', (message) => {
			if (message.type() === 'error') {
				consoleErrors.push(`${message.text()} (${message.location().url})`);
			}
		});
	});
	t.after(async () => {
		await browser.close();
	});
	return {
		context,
		/** Page errors seen so far ("uncaught exception in the page"). */
		pageErrors,
		/** Console messages of type error seen so far, the browser's own included. */
		consoleErrors,
	};
}

/**
 * Open the demo page and sign it in with `apiKey` through its API-key field (the stack runs with Redis,
 * so /demo-config.json hands out no key and the page asks for one).
 * @param {import('playwright-core').BrowserContext} context
 * @param {Stack} stack
 * @param {string} apiKey
 */
export async function openDemo(context, stack, apiKey) {
	const page = await context.newPage();
	await page.goto(stack.baseUrl);
	await page.locator('#api-key').fill(apiKey);
	await page.locator('#api-key-save').click();
	await page.locator('#app[data-ready="true"]').waitFor();
	return page;
}

/**
 * A tab that opens the demo page in a context that already holds the key (a second tab, or a reload).
 * @param {import('playwright-core').BrowserContext} context
 * @param {Stack} stack
 */
export async function openSignedInDemo(context, stack) {
	const page = await context.newPage();
	await page.goto(stack.baseUrl);
	await page.locator('#app[data-ready="true"]').waitFor();
	return page;
}

/**
 * Submit a prompt from the page's form; resolves with the new job's id as the page shows it.
 * @param {import('playwright-core').Page} page
 * @param {string} prompt
 */
export async function submitPrompt(page, prompt) {
	const before = await page.locator('[data-testid="job"]').count();
	await page.locator('#prompt').fill(prompt);
	await page.locator('#submit').click();
	await page.locator('[data-testid="job"]').nth(before).waitFor();
	// Newest first: the job just submitted is the first card.
	return /** @type {string} */ (await page.locator('[data-testid="job"]').first().getAttribute('data-job-id'));
}

/**
 * Record, in the page, every progress value and stage text that job cards show from now on.
 * @param {import('playwright-core').Page} page
 * @returns {Promise<(jobId: string) => Promise<Array<{percent: number | null, stage: string}>>>}
 */
export async function recordProgress(page) {
	await page.evaluate(() => {
		/** @type {Array<{id: string, percent: number | null, stage: string}>} */
		const seen = [];
		/** @type {any} */ (window).progressSeen = seen;
		const record = (/** @type {HTMLElement} */ card) => {
			const progress = card.querySelector('progress');
			const entry = {
				id: card.dataset.jobId ?? '',
				percent: progress?.hasAttribute('value') ? Number(progress.getAttribute('value')) : null,
				stage: card.querySelector('[data-testid="job-stage"]')?.textContent ?? '',
			};
			const last = seen.findLast((previous) => previous.id === entry.id);
			if (!last || last.percent !== entry.percent || last.stage !== entry.stage) {
				seen.push(entry);
			}
		};

		new MutationObserver((mutations) => {
			for (const mutation of mutations) {
				const node = mutation.target.nodeType === Node.ELEMENT_NODE ? /** @type {Element} */ (mutation.target) : mutation.target.parentElement;
				const card = node?.closest('[data-testid="job"]');
				if (card) {
					record(/** @type {HTMLElement} */ (card));
				}
			}
		}).observe(/** @type {Element} */ (document.querySelector('#jobs')), {subtree: true, childList: true, characterData: true, attributes: true, attributeFilter: ['value']});
	});
	return (jobId) => page.evaluate((id) => /** @type {any} */ (window).progressSeen.filter((entry) => entry.id === id), jobId);
}

/**
 * @param {import('playwright-core').Page} page
 * @param {string} jobId
 */
export function jobCard(page, jobId) {
	return page.locator(`[data-testid="job"][data-job-id="${jobId}"]`);
}
