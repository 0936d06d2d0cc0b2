/**
 * The ops page: reads GET /health/details with an ops-scoped key every few seconds and shows it.
 * No framework, no chart library: tables, figures and sparklines drawn here (sparkline.js).
 */

import {drawSparkline} from './sparkline.js';

const KEY_STORAGE = 'ai-jobs-ops:key';
const REFRESH_MS = 5000;
const REQUEST_TIMEOUT_MS = 5000;
// The deciding checks first, as /health/ready lists them.
const CHECK_ORDER = ['database', 'broker', 'workers'];

/**
 * @typedef {{ok: boolean, latency_ms: number, error?: string, alive?: number, decides_readiness?: boolean}} Check
 * @typedef {{id: string, hostname: string, pid: number, beat_at: string, beat_age_s: number, running_jobs: number}} Worker
 * @typedef {{polls: number, failed_polls: number, success_rate: number | null, p50_ms: number | null,
 *   p95_ms: number | null, recoveries: number, recovery_avg_s: number | null, sweep: Record<string, number>,
 *   slow_queries: number}} Window
 * @typedef {{pid: number, running_s: number, statement: string}} RunningStatement
 * @typedef {object} Details
 * @property {string} status
 * @property {Record<string, Check>} checks
 * @property {{alive: number, heartbeat_timeout_s: number, processes: Worker[]}} workers
 * @property {{depth: number, running: number, oldest_queued_age_s: number}} queue
 * @property {Record<string, number>} jobs_by_status
 * @property {number} finished_window_s
 * @property {Window} window
 * @property {Window[]} points
 * @property {{threshold_s: number, running: RunningStatement[]}} slow_queries
 */

/**
 * @param {string} id
 * @returns {HTMLElement}
 */
function byId(id) {
	const element = document.getElementById(id);
	if (!element) {
		throw new Error(`the page has no #${id}`);
	}

	return element;
}

/** @param {number} seconds */
function duration(seconds) {
	if (seconds < 1) {
		return `${Math.round(seconds * 1000)} ms`;
	}

	if (seconds < 120) {
		return `${seconds.toFixed(1)} s`;
	}

	return `${Math.round(seconds / 60)} min`;
}

/**
 * @param {number | null} value
 * @param {(value: number) => string} format
 */
function orDash(value, format) {
	return value === null ? '–' : format(value);
}

/** @param {number} rate */
const percent = (rate) => `${(rate * 100).toFixed(2)} %`;
/** @param {number} ms */
const millis = (ms) => `${ms.toFixed(1)} ms`;

/**
 * @param {HTMLElement} list
 * @param {Record<string, number>} figures
 */
function renderFigures(list, figures) {
	list.replaceChildren(...Object.entries(figures).map(([name, value]) => {
		const item = document.createElement('div');
		const term = document.createElement('dt');
		term.textContent = name;
		const figure = document.createElement('dd');
		figure.textContent = String(value);
		figure.dataset.name = name;
		item.append(term, figure);
		return item;
	}));
}

/**
 * @param {HTMLElement} table
 * @param {Array<Array<string | {text: string, ok: boolean}>>} rows
 */
function renderRows(table, rows) {
	const body = table.querySelector('tbody');
	if (!body) {
		return;
	}

	body.replaceChildren(...rows.map((cells) => {
		const row = document.createElement('tr');
		for (const cell of cells) {
			const td = document.createElement('td');
			if (typeof cell === 'string') {
				td.textContent = cell;
			} else {
				td.textContent = cell.text;
				td.dataset.ok = String(cell.ok);
			}

			row.append(td);
		}

		return row;
	}));
}

/** @param {Details} details */
export function render(details) {
	const ready = byId('ready-status');
	ready.textContent = details.status;
	ready.dataset.ok = String(details.status === 'ok');
	const order = (/** @type {string} */ name) => {
		const index = CHECK_ORDER.indexOf(name);
		return index === -1 ? CHECK_ORDER.length : index;
	};
	const checks = Object.entries(details.checks).sort(([a], [b]) => order(a) - order(b) || a.localeCompare(b));
	renderRows(byId('checks'), checks.map(([name, check]) => [
		name,
		{text: check.ok ? 'ok' : (check.error ?? 'failing'), ok: check.ok},
		`${check.latency_ms.toFixed(2)} ms`,
	]));

	byId('workers-alive').textContent = String(details.workers.alive);
	renderRows(byId('workers'), details.workers.processes.map((worker) => [
		`${worker.hostname} (pid ${worker.pid})`,
		`${duration(worker.beat_age_s)} ago`,
		String(worker.running_jobs),
	]));

	byId('queue-depth').textContent = String(details.queue.depth);
	byId('queue-running').textContent = String(details.queue.running);
	byId('queue-oldest').textContent = duration(details.queue.oldest_queued_age_s);
	renderFigures(byId('jobs-by-status'), details.jobs_by_status);
	byId('finished-window').textContent = `Finished statuses count the last ${Math.round(details.finished_window_s / 60)} minutes.`;

	const recent = details.window;
	byId('poll-success').textContent = orDash(recent.success_rate, percent);
	byId('poll-p50').textContent = orDash(recent.p50_ms, millis);
	byId('poll-p95').textContent = orDash(recent.p95_ms, millis);
	byId('poll-count').textContent = String(recent.polls);
	byId('recoveries').textContent = String(recent.recoveries);
	byId('recovery-avg').textContent = orDash(recent.recovery_avg_s, duration);
	renderFigures(byId('sweep-actions'), recent.sweep);
	byId('slow-count').textContent = String(recent.slow_queries);
	byId('slow-threshold').textContent = duration(details.slow_queries.threshold_s);
	byId('slow-running').replaceChildren(...details.slow_queries.running.map((statement) => {
		const item = document.createElement('li');
		item.textContent = `${duration(statement.running_s)} — ${statement.statement}`;
		return item;
	}));

	const points = details.points;
	drawSparkline(byId('spark-success'), points.map((point) => point.success_rate), {label: 'poll success rate', min: 0, max: 1, format: percent});
	drawSparkline(byId('spark-p95'), points.map((point) => point.p95_ms), {label: 'poll p95 latency', min: 0, format: millis});
	drawSparkline(byId('spark-recoveries'), points.map((point) => point.recoveries), {label: 'recoveries', min: 0});
	drawSparkline(byId('spark-slow'), points.map((point) => point.slow_queries), {label: 'slow queries', min: 0});
}

/** Polls /health/details while a key is set; every timer and request is cleared on stop. */
class OpsPage {
	/** @type {ReturnType<typeof setTimeout> | undefined} */
	timer = undefined;
	/** @type {AbortController | undefined} */
	request = undefined;

	start() {
		const form = /** @type {HTMLFormElement} */ (byId('key-form'));
		const input = /** @type {HTMLInputElement} */ (byId('ops-key'));
		form.addEventListener('submit', (event) => {
			event.preventDefault();
			sessionStorage.setItem(KEY_STORAGE, input.value.trim());
			input.value = '';
			this.refresh();
		});
		byId('ops-key-forget').addEventListener('click', () => {
			sessionStorage.removeItem(KEY_STORAGE);
			this.stop();
			byId('dashboard').hidden = true;
			this.setState('idle');
		});
		window.addEventListener('pagehide', () => this.stop());
		if (sessionStorage.getItem(KEY_STORAGE)) {
			this.refresh();
		}
	}

	stop() {
		clearTimeout(this.timer);
		this.timer = undefined;
		this.request?.abort();
		this.request = undefined;
	}

	/** @param {string} state */
	setState(state) {
		byId('app').dataset.state = state;
	}

	/** @param {string | null} message */
	showError(message) {
		const error = byId('ops-error');
		error.textContent = message ?? '';
		error.hidden = message === null;
	}

	async refresh() {
		this.stop();
		const key = sessionStorage.getItem(KEY_STORAGE);
		if (!key) {
			return;
		}

		const request = new AbortController();
		this.request = request;
		const timeout = setTimeout(() => request.abort(), REQUEST_TIMEOUT_MS);
		try {
			const response = await fetch('/health/details', {
				headers: {Authorization: `Bearer ${key}`, Accept: 'application/json'},
				cache: 'no-store',
				signal: request.signal,
			});
			const body = await response.json().catch(() => null);
			if (response.status === 401 || response.status === 403) {
				this.setState(`refused-${response.status}`);
				byId('dashboard').hidden = true;
				this.showError(`${response.status}: ${body?.detail ?? response.statusText}`);
				return; // no retry: a refused key stays refused until another is entered
			}

			if (!response.ok || !body) {
				throw new Error(`the server answered ${response.status}`);
			}

			render(/** @type {Details} */ (body));
			this.showError(null);
			byId('dashboard').hidden = false;
			byId('ops-updated').textContent = `Updated ${new Date().toLocaleTimeString()}.`;
			this.setState('live');
		} catch (error) {
			if (request.signal.aborted && this.request !== request) {
				return; // stopped on purpose
			}

			this.setState('error');
			this.showError(`Could not read /health/details: ${error instanceof Error ? error.message : String(error)}`);
		} finally {
			clearTimeout(timeout);
		}

		if (this.request === request) {
			this.request = undefined;
			this.timer = setTimeout(() => this.refresh(), REFRESH_MS);
		}
	}
}

new OpsPage().start();
