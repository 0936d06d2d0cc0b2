/**
 * The demo page: submit prompts to the canvas agent and watch the jobs with the polling client.
 *
 * Everything shown comes from the server or from the client's own bookkeeping (health(), pollLog()):
 * progress, stage, estimates and queue positions are the server's; nothing is animated or guessed.
 */

import {
	AbortError,
	CircuitOpenError,
	createJobsClient,
	DeadlineError,
	HTTPError,
	isTerminalStatus,
	NetworkError,
	ProblemError,
	TimeoutError,
} from '/client/src/index.js';
import {renderDrawing} from './drawing.js';

const AGENT = 'canvas';
const KEY_STORAGE = 'ai-jobs-demo:api-key';
const SETTINGS_STORAGE = 'ai-jobs-demo:settings';
// The client's namespace, so the page can notice watches that another tab starts.
const CLIENT_NAMESPACE = 'ai-jobs';
const LIST_LIMIT = 20;
const MAX_NOTICES = 8;
// Finished cards but the newest show one line each, so a screen or two holds 20 jobs.
const OPEN_FINISHED_CARDS = 1;
const FINISHED_VERB = {succeeded: 'Succeeded', failed: 'Failed', cancelled: 'Cancelled'};
const TICK_MS = 500;
const EXAMPLES = [
	'three red circles in a row',
	'a 2x3 grid of blue squares labelled A to F',
	'flowchart: Start -> Validate -> Save -> End',
	'a big yellow star next to a small green triangle',
	'a title that says Quarterly Plan above two columns',
];

/**
 * Client options of this page. An outage should show (and end) within seconds in a demo, so the
 * breaker opens after 3 failures and probes every 5 s; a watch survives about 2 minutes of outage.
 */
const BASE_CLIENT_OPTIONS = {
	namespace: CLIENT_NAMESPACE,
	requestTimeoutMs: 5000,
	waitSeconds: 25,
	retry: {maxAttempts: 30, baseDelayMs: 500, maxDelayMs: 5000},
	breaker: {failureThreshold: 3, coolDownMs: 5000},
};

/**
 * @typedef {import('/client/src/index.js').JobStatus} JobStatus
 * @typedef {import('/client/src/index.js').Job} Job
 * @typedef {import('/client/src/index.js').JobsClient} JobsClient
 *
 * @typedef {object} JobView
 * @property {string} id
 * @property {HTMLLIElement} element
 * @property {{prompt?: string, width?: number, height?: number} | null} input
 * @property {JobStatus | Job | null} status the newest status (or full job) seen
 * @property {Job | null} job the full job, once terminal
 * @property {unknown} watchError why polling stopped for good, when it did
 * @property {string | null} lastPollError the last failed poll, while backing off
 * @property {boolean} cancelling
 * @property {boolean} drawn
 * @property {boolean} fetching the job's details are being fetched
 * @property {boolean | null} expanded the user's choice for a finished card; null: collapse it once older
 */

const state = {
	/** @type {string | null} */
	apiKey: null,
	/** @type {JobsClient | null} */
	client: null,
	settings: {interval: 'auto', longPoll: false, paused: false},
	/** @type {Map<string, JobView>} */
	jobs: new Map(),
	canvasDefaults: {width: 1200, height: 800},
	/** @type {ReturnType<typeof setInterval> | undefined} */
	ticker: undefined,
	rekeying: false,
};

const $ = (/** @type {string} */ selector) => /** @type {HTMLElement} */ (document.querySelector(selector));

// ---- small helpers ---------------------------------------------------------------------------------

function storageGet(key) {
	try {
		return localStorage.getItem(key);
	} catch {
		return null;
	}
}

function storageSet(key, value) {
	try {
		if (value === null) {
			localStorage.removeItem(key);
		} else {
			localStorage.setItem(key, value);
		}
	} catch {
		// Storage disabled: the page still works, it just forgets on reload.
	}
}

/** @param {number | string | Date | null | undefined} value */
function clock(value) {
	if (value === null || value === undefined) {
		return '–';
	}

	const date = new Date(value);
	return Number.isNaN(date.getTime()) ? '–' : date.toLocaleTimeString([], {hour: '2-digit', minute: '2-digit', second: '2-digit'});
}

/** @param {number} ms */
function seconds(ms) {
	const s = ms / 1000;
	return s < 10 ? `${s.toFixed(1)} s` : `${Math.round(s)} s`;
}

/** @param {string} text @param {number} length */
function shorten(text, length = 48) {
	return text.length > length ? `${text.slice(0, length - 1)}…` : text;
}

/** A sentence about a failure, from the client's error classes. */
function describeError(error) {
	if (error instanceof CircuitOpenError) {
		return Number.isFinite(error.retryAt)
			? `Server unreachable; the next attempt is allowed at ${clock(error.retryAt)}.`
			: 'Server unreachable; a probe request is checking whether it is back.';
	}

	if (error instanceof ProblemError) {
		const fields = error.errors && typeof error.errors === 'object' ? ` (${flattenErrors(error.errors).join('; ')})` : '';
		return `${error.title || `HTTP ${error.status}`}${error.detail ? `: ${error.detail}` : ''}${fields}`;
	}

	if (error instanceof HTTPError) {
		return `The server answered HTTP ${error.status}.`;
	}

	if (error instanceof DeadlineError) {
		return 'Gave up: the job took longer than the watch deadline.';
	}

	if (error instanceof TimeoutError) {
		return 'The server did not answer in time.';
	}

	if (error instanceof NetworkError) {
		return 'Could not reach the server.';
	}

	return error instanceof Error ? error.message : String(error);
}

/** "input.prompt: Missing data" lines from a problem's `errors` member. */
function flattenErrors(errors, prefix = '') {
	if (Array.isArray(errors)) {
		return [`${prefix || 'request'}: ${errors.join(' ')}`];
	}

	if (errors && typeof errors === 'object') {
		return Object.entries(errors).flatMap(([key, value]) => flattenErrors(value, prefix ? `${prefix}.${key}` : key));
	}

	return [`${prefix || 'request'}: ${String(errors)}`];
}

/**
 * Add a line to the notifications (an aria-live region, so screen readers hear it too).
 * @param {'info' | 'success' | 'warning' | 'error'} kind
 * @param {string} text
 */
function notify(kind, text) {
	const list = $('#notifications');
	const item = document.createElement('li');
	item.className = `notice notice-${kind}`;
	item.dataset.kind = kind;
	item.dataset.testid = 'notice';
	const time = document.createElement('time');
	time.dateTime = new Date().toISOString();
	time.textContent = clock(Date.now());
	const message = document.createElement('span');
	message.textContent = text;
	item.append(time, ' ', message);
	list.prepend(item);
	while (list.children.length > MAX_NOTICES) {
		list.lastElementChild?.remove();
	}
}

// ---- settings and the client -----------------------------------------------------------------------

function loadSettings() {
	try {
		const saved = JSON.parse(storageGet(SETTINGS_STORAGE) ?? '{}');
		state.settings = {
			interval: ['auto', '1000', '2000', '5000'].includes(saved.interval) ? saved.interval : 'auto',
			longPoll: saved.longPoll === true,
			paused: saved.paused === true,
		};
	} catch {
		// Unreadable settings: keep the defaults.
	}
}

function saveSettings() {
	storageSet(SETTINGS_STORAGE, JSON.stringify(state.settings));
}

/** The client's options for the current settings; a fixed interval is a floor over the server's hints. */
function clientOptions() {
	const options = {
		...BASE_CLIENT_OPTIONS,
		baseUrl: location.origin,
		getToken: () => state.apiKey ?? '',
		longPoll: state.settings.longPoll,
	};
	if (state.settings.interval !== 'auto') {
		const ms = Number(state.settings.interval);
		Object.assign(options, {intervalMs: {queued: ms, running: ms}, minIntervalMs: ms});
	}

	return options;
}

/**
 * (Re)create the client; options are fixed per client, so a settings change means a new one. Closing the
 * old client keeps its watches in storage, and resumeWatches() picks them up with their schedules.
 */
function buildClient() {
	state.client?.close();
	const options = clientOptions();
	const client = createJobsClient(options);
	state.client = client;
	const current = (handler) => (event) => {
		if (state.client === client) {
			handler(event.detail);
		}
	};

	client.addEventListener('update', current(({status}) => applyStatus(status)));
	client.addEventListener('done', current(({job}) => applyFinished(job)));
	client.addEventListener('error', current(onWatchError));
	client.addEventListener('statechange', current(({id}) => renderJob(id)));
	client.addEventListener('breakerchange', current(onBreakerChange));
	if (state.settings.paused) {
		client.pause();
	}

	for (const [id, done] of client.resumeWatches({onUpdate: applyStatus})) {
		ensureView(id);
		done.catch(quietly);
	}

	const shown = {...options, getToken: '(the API key)'};
	$('#options-json').textContent = JSON.stringify(shown, null, 2);
	renderControls();
	renderHealth();
}

/**
 * Outcomes of watch promises reach the page as the client's 'done' and 'error' events; the promise
 * itself only rejects on top of those, or with AbortError when the page replaces its client.
 */
function quietly() {}

/** @param {string} id */
function watchJob(id) {
	const {client} = state;
	if (!client || client.health().jobs[id]) {
		return;
	}

	const view = ensureView(id);
	view.watchError = null;
	client.watch(id, {onUpdate: applyStatus}).catch(quietly);
	renderJob(id);
}

// ---- job views -------------------------------------------------------------------------------------

/** @param {string} id */
function ensureView(id) {
	let view = state.jobs.get(id);
	if (view) {
		return view;
	}

	const template = /** @type {HTMLTemplateElement} */ ($('#job-template'));
	const element = /** @type {HTMLLIElement} */ (template.content.firstElementChild.cloneNode(true));
	element.dataset.jobId = id;
	const titleId = `job-title-${id}`;
	element.querySelector('.job-title').id = titleId;
	element.querySelector('article').setAttribute('aria-labelledby', titleId);
	element.querySelector('progress').setAttribute('aria-labelledby', titleId);
	for (const button of element.querySelectorAll('button')) {
		button.setAttribute('aria-describedby', titleId);
	}

	element.querySelector('.job-cancel').addEventListener('click', () => cancelJob(id));
	element.querySelector('.job-pause').addEventListener('click', () => toggleJobPause(id));
	element.querySelector('.job-rewatch').addEventListener('click', () => watchJob(id));
	element.querySelector('.job-toggle').addEventListener('click', () => toggleJobDetails(id));
	view = {id, element, input: null, status: null, job: null, watchError: null, lastPollError: null, cancelling: false, drawn: false, fetching: false, expanded: null};
	state.jobs.set(id, view);
	placeView(view);
	$('#jobs-empty').hidden = true;
	renderJob(id);
	return view;
}

/** Keep the list newest first by the server's created_at; a job not yet described goes on top. */
function placeView(view) {
	const list = $('#jobs');
	const created = view.status?.created_at;
	if (!created) {
		if (!view.element.isConnected) {
			list.prepend(view.element);
		}

		return;
	}

	const older = [...list.children].find((element) => element !== view.element
		&& (state.jobs.get(/** @type {HTMLElement} */ (element).dataset.jobId ?? '')?.status?.created_at ?? '\uffff') < created);
	if (older) {
		if (view.element.nextElementSibling !== older) {
			list.insertBefore(view.element, older);
		}
	} else if (list.lastElementChild !== view.element) {
		list.append(view.element);
	}
}

/**
 * Collapse finished cards older than the newest OPEN_FINISHED_CARDS finished ones, unless the user opened
 * them; running and queued cards always show everything.
 */
function applyCollapse() {
	let finishedSeen = 0;
	for (const element of $('#jobs').children) {
		const view = state.jobs.get(/** @type {HTMLElement} */ (element).dataset.jobId ?? '');
		if (!view) {
			continue;
		}

		const finished = isTerminalStatus(view.status?.status ?? '');
		let collapsed = false;
		if (finished) {
			finishedSeen += 1;
			collapsed = view.expanded === null ? finishedSeen > OPEN_FINISHED_CARDS : !view.expanded;
		}

		const card = view.element;
		if (card.dataset.collapsed !== String(collapsed)) {
			card.dataset.collapsed = String(collapsed);
		}

		const toggle = /** @type {HTMLButtonElement} */ (card.querySelector('.job-toggle'));
		toggle.hidden = !finished;
		toggle.setAttribute('aria-expanded', String(!collapsed));
		setText(/** @type {HTMLElement} */ (toggle.querySelector('.visually-hidden')), collapsed ? 'Show details' : 'Hide details');
	}
}

/** @param {string} id */
function toggleJobDetails(id) {
	const view = state.jobs.get(id);
	if (view) {
		view.expanded = view.element.dataset.collapsed === 'true';
		applyCollapse();
	}
}

/**
 * A full job from the server (submit, list, get, cancel): remember its input and show it.
 * @param {Job} job
 */
function applyJob(job) {
	const view = ensureView(job.id);
	view.input = job.input ?? view.input;
	if (isTerminalStatus(job.status)) {
		applyFinished(job, {announce: false});
	} else {
		applyStatus(job);
	}
}

/** @param {JobStatus | Job} status */
function applyStatus(status) {
	if (!status || typeof status.id !== 'string') {
		return;
	}

	const view = ensureView(status.id);
	const previous = view.status;
	if (previous && status.version < previous.version) {
		return;
	}

	view.status = status;
	if (!previous || previous.created_at !== status.created_at) {
		placeView(view);
	}

	if (previous && previous.status !== status.status && status.status === 'running') {
		notify('info', `Started: “${titleOf(view)}”.`);
	}

	renderJob(status.id);
	if (!previous || previous.status !== status.status) {
		applyCollapse();
	}

	if (!view.input && !view.fetching) {
		void fetchDetails(view);
	}
}

/**
 * The job is terminal and we hold it in full (with its result).
 * @param {Job} job
 * @param {{announce?: boolean}} [options]
 */
function applyFinished(job, {announce = true} = {}) {
	const view = ensureView(job.id);
	const alreadyFinished = view.job !== null;
	view.job = job;
	view.input = job.input ?? view.input;
	if (!view.status || job.version >= view.status.version) {
		view.status = job;
	}

	placeView(view);
	renderJob(job.id);
	applyCollapse();
	if (announce && !alreadyFinished) {
		const title = titleOf(view);
		if (job.status === 'succeeded') {
			const count = Array.isArray(job.result?.objects) ? job.result.objects.length : 0;
			notify('success', `Done: “${title}” — ${count} ${count === 1 ? 'object' : 'objects'}.`);
		} else if (job.status === 'cancelled') {
			notify('info', `Cancelled: “${title}”.`);
		} else {
			notify('error', `Failed: “${title}” — ${job.error?.message ?? 'no reason given'}.`);
		}
	}
}

/** The prompt of a job we know only by id (resumed from storage, or started in another tab). */
async function fetchDetails(view) {
	view.fetching = true;
	try {
		const job = await state.client.get(view.id);
		view.input = job.input ?? null;
		renderJob(view.id);
	} catch {
		// The title stays the id; polling reports any real problem.
	}
}

/** @param {JobView} view */
function titleOf(view) {
	return view.input?.prompt ? shorten(view.input.prompt) : `job ${view.id}`;
}

function onWatchError({id, error, final}) {
	const view = state.jobs.get(id);
	if (!view) {
		return;
	}

	if (final) {
		view.watchError = error;
		notify('error', `Stopped polling “${titleOf(view)}”: ${describeError(error)}`);
		if (refusedEmbeddedKey(error)) {
			void followNewEmbeddedKey();
		}
	} else {
		view.lastPollError = describeError(error);
	}

	renderJob(id);
}

/** A 401 for the development key this page got from the embedded server. */
function refusedEmbeddedKey(error) {
	return error instanceof HTTPError && error.status === 401 && !$('#key-embedded').hidden;
}

/**
 * The embedded server refused its own development key: it was restarted with another one (DEV_API_KEY,
 * or a deleted instance/dev-api-key). Sign in again with the key it hands out now, instead of leaving
 * the page failing. Resolves true when the page is signed in with a new key.
 */
async function followNewEmbeddedKey() {
	if (state.rekeying) {
		return false;
	}

	state.rekeying = true;
	try {
		const key = await embeddedKey();
		if (key && key !== state.apiKey) {
			notify('info', 'The server has a new development key; signed in again with it.');
			return await startSession(key);
		}

		notify('error', 'The server refused its development key; reload the page after restarting it.');
		return false;
	} finally {
		state.rekeying = false;
	}
}

/** Submit; when the embedded server has changed its key since the page loaded, follow it and send once more. */
async function submitJob(input) {
	try {
		return await state.client.submit(AGENT, input);
	} catch (error) {
		if (refusedEmbeddedKey(error) && await followNewEmbeddedKey()) {
			return state.client.submit(AGENT, input);
		}

		throw error;
	}
}

function onBreakerChange({state: breaker, previous}) {
	if (breaker === 'open' && previous === 'closed') {
		notify('warning', 'Server unreachable — retrying.');
	} else if (breaker === 'closed' && previous !== 'closed') {
		notify('success', 'Back online.');
		for (const view of state.jobs.values()) {
			view.lastPollError = null;
		}
	}

	renderHealth();
}

async function cancelJob(id) {
	const view = state.jobs.get(id);
	if (!view || !state.client) {
		return;
	}

	view.cancelling = true;
	renderJob(id);
	try {
		const job = await state.client.cancel(id);
		applyJob(job);
		if (!isTerminalStatus(job.status)) {
			notify('info', `Cancel requested: “${titleOf(view)}” stops at its next checkpoint.`);
		}
	} catch (error) {
		view.cancelling = false;
		notify('error', `Could not cancel “${titleOf(view)}”: ${describeError(error)}`);
		renderJob(id);
	}
}

function toggleJobPause(id) {
	const {client} = state;
	if (!client) {
		return;
	}

	if (jobPausedAlone(id)) {
		client.resume(id);
	} else {
		client.pause(id);
	}

	renderJob(id);
}

/** Paused with pause(id), as opposed to paused with everything else. */
function jobPausedAlone(id) {
	const health = state.client?.health();
	return Boolean(health && health.jobs[id]?.state === 'paused' && !health.paused && !health.offline);
}

// ---- rendering -------------------------------------------------------------------------------------

/** @param {HTMLElement} element @param {string} text */
function setText(element, text) {
	if (element.textContent !== text) {
		element.textContent = text;
	}
}

/** @param {string} id */
function renderJob(id) {
	const view = state.jobs.get(id);
	if (!view) {
		return;
	}

	const {element, status} = view;
	const health = state.client?.health().jobs[id];
	const name = status?.status ?? health?.status ?? 'unknown';
	element.dataset.status = name;
	element.dataset.pollState = health?.state ?? (view.watchError ? 'failed' : 'idle');
	element.dataset.role = health?.role ?? '';
	setText(element.querySelector('.job-title'), view.input?.prompt ? `“${view.input.prompt}”` : `Job ${id}`);
	const badge = element.querySelector('.job-status');
	setText(badge, name);
	badge.className = `badge job-status status-${name}`;
	const meta = [id];
	if (status?.created_at) {
		meta.push(`created ${clock(status.created_at)}`);
	}

	if (view.job?.attempts > 1) {
		meta.push(`attempt ${view.job.attempts}`);
	}

	setText(element.querySelector('.job-meta'), meta.join(' · '));

	const progress = /** @type {HTMLProgressElement} */ (element.querySelector('progress'));
	const percent = status?.progress?.percent;
	if (typeof percent === 'number') {
		if (progress.value !== percent || !progress.hasAttribute('value')) {
			progress.value = percent;
		}

		setText(element.querySelector('.percent'), `${Math.round(percent)} %`);
	} else {
		progress.removeAttribute('value');
		setText(element.querySelector('.percent'), '');
	}

	setText(element.querySelector('.job-stage'), stageText(view));
	setText(element.querySelector('.job-eta'), etaText(status));
	const finish = /** @type {HTMLElement} */ (element.querySelector('.job-finish'));
	const finishLine = finishText(status);
	finish.hidden = finishLine === '';
	setText(finish, finishLine);
	setText(element.querySelector('.job-polling'), pollingText(view, health));

	const error = element.querySelector('.job-error');
	const errorText = view.job?.status === 'failed' ? `${view.job.error?.code ?? 'error'}: ${view.job.error?.message ?? ''}` : '';
	error.hidden = errorText === '';
	setText(error, errorText);

	const terminal = isTerminalStatus(name);
	const cancel = /** @type {HTMLButtonElement} */ (element.querySelector('.job-cancel'));
	cancel.hidden = terminal;
	cancel.disabled = view.cancelling || Boolean(status?.cancel_requested_at);
	setText(cancel, cancel.disabled ? 'Cancelling…' : 'Cancel');
	const pause = /** @type {HTMLButtonElement} */ (element.querySelector('.job-pause'));
	pause.hidden = terminal || !health;
	const pausedAlone = jobPausedAlone(id);
	pause.setAttribute('aria-pressed', String(pausedAlone));
	setText(pause, pausedAlone ? 'Resume' : 'Pause');
	const rewatch = /** @type {HTMLButtonElement} */ (element.querySelector('.job-rewatch'));
	rewatch.hidden = terminal || Boolean(health) || !view.watchError;

	if (view.job?.status === 'succeeded' && !view.drawn) {
		drawResult(view);
	}
}

/** @param {JobView} view */
function stageText(view) {
	const {status} = view;
	if (!status) {
		return 'Waiting for the first status…';
	}

	if (status.status === 'cancelled') {
		return 'Cancelled.';
	}

	if (status.status === 'succeeded' && view.job?.result?.summary) {
		return view.job.result.summary;
	}

	// The finish line and the error line say how a failed job ended; its last stage would only repeat it.
	if (status.status === 'failed') {
		return '';
	}

	const {stage, message} = status.progress ?? {};
	if (stage || message) {
		return [stage, message].filter(Boolean).join(': ');
	}

	return status.status === 'queued' ? 'Queued.' : '';
}

/** The card's one line about how and when a finished job ended; empty until it has. */
function finishText(status) {
	if (!status || !isTerminalStatus(status.status)) {
		return '';
	}

	const at = status.finished_at ? ` at ${clock(status.finished_at)}` : '';
	const ran = status.finished_at && status.started_at
		? ` after ${seconds(new Date(status.finished_at).getTime() - new Date(status.started_at).getTime())}`
		: '';
	return `${FINISHED_VERB[status.status] ?? status.status}${at}${ran}.`;
}

/** @param {number} ahead queued jobs submitted before this one (the server's queue_position) */
function queueText(ahead) {
	if (ahead === 0) {
		return 'Next in line';
	}

	return `${ahead} ${ahead === 1 ? 'job' : 'jobs'} ahead in the queue`;
}

/** The server's estimate and queue position, with the time left counted from now; empty once finished. */
function etaText(status) {
	if (!status || isTerminalStatus(status.status)) {
		return '';
	}

	const parts = [];
	if (status.status === 'queued' && typeof status.queue_position === 'number') {
		parts.push(queueText(status.queue_position));
	}

	if (status.estimated_completion_at) {
		const leftMs = new Date(status.estimated_completion_at).getTime() - Date.now();
		parts.push(leftMs > 0
			? `ETA ${clock(status.estimated_completion_at)} (about ${seconds(leftMs)} left, server estimate)`
			: `ETA ${clock(status.estimated_completion_at)} has passed (server estimate)`);
	} else if (status.status === 'running') {
		parts.push('No estimate yet');
	}

	return parts.length > 0 ? `${parts.join(' · ')}.` : '';
}

/** @param {JobView} view @param {import('/client/src/index.js').WatchHealth | undefined} health */
function pollingText(view, health) {
	if (!health) {
		// A finished job's card already says so on its finish line.
		if (view.job) {
			return '';
		}

		return view.watchError ? `Polling stopped: ${describeError(view.watchError)}` : 'Not watched.';
	}

	const now = Date.now();
	const next = health.nextPollAt === null ? '' : ` · next poll ${health.nextPollAt <= now ? 'now' : `in ${seconds(health.nextPollAt - now)}`}`;
	switch (health.state) {
		case 'paused': {
			return 'Polling paused.';
		}

		case 'backing-off': {
			return `Retrying after a failed poll (${view.lastPollError ?? 'error'}; attempt ${health.attempt})${next}.`;
		}

		case 'active': {
			if (health.role === 'follower') {
				return 'Another tab polls this job; its updates arrive here.';
			}

			return `Polling${health.role === 'leader' ? ' from this tab' : ''}${next}.`;
		}

		default: {
			return `Polling ${health.state}.`;
		}
	}
}

/** @param {JobView} view */
function drawResult(view) {
	const figure = view.element.querySelector('.drawing');
	const frame = figure.querySelector('.drawing-frame');
	const result = view.job?.result ?? {};
	const canvas = {
		width: Number(view.input?.width) || state.canvasDefaults.width,
		height: Number(view.input?.height) || state.canvasDefaults.height,
	};
	frame.replaceChildren(renderDrawing(result, canvas));
	setText(figure.querySelector('figcaption'), `${result.summary ?? 'Drawing'} (${canvas.width}×${canvas.height} px)`);
	figure.hidden = false;
	view.drawn = true;
}

const BREAKER_TEXT = {
	closed: 'Connected',
	open: 'Server unreachable — retrying',
	'half-open': 'Checking whether the server is back…',
};

function renderHealth() {
	const {client} = state;
	if (!client) {
		return;
	}

	const health = client.health();
	const breaker = $('#breaker-state');
	breaker.dataset.state = health.breaker;
	setText(breaker, BREAKER_TEXT[health.breaker] ?? health.breaker);
	let mode = 'Running';
	if (health.paused) {
		mode = 'Paused (all jobs)';
	} else if (health.offline) {
		mode = 'Paused: the browser is offline';
	} else if (health.hidden) {
		mode = 'Slowed down: this tab is hidden';
	}

	const watched = Object.values(health.jobs);
	const leading = watched.filter((job) => job.role === 'leader').length;
	if (watched.length > 0) {
		mode += ` · ${watched.length} watched, ${leading} polled from this tab`;
	}

	setText($('#polling-mode'), mode);
	setText($('#last-success'), health.lastSuccessAt === null ? 'none yet' : `${clock(health.lastSuccessAt)} (${seconds(Date.now() - health.lastSuccessAt)} ago)`);
	$('#last-success').dataset.at = String(health.lastSuccessAt ?? '');
	setText($('#latency-p50'), health.p50LatencyMs === null ? '–' : `${health.p50LatencyMs} ms`);
	setText($('#latency-p95'), health.p95LatencyMs === null ? '–' : `${health.p95LatencyMs} ms`);
	setText($('#success-rate'), health.successRate === null ? '–' : `${Math.round(health.successRate * 100)} % of the last ${client.pollLog().length} polls`);
}

function renderControls() {
	/** @type {HTMLSelectElement} */ ($('#interval')).value = state.settings.interval;
	/** @type {HTMLInputElement} */ ($('#long-poll')).checked = state.settings.longPoll;
	const pause = $('#pause-all');
	pause.setAttribute('aria-pressed', String(state.settings.paused));
	setText(pause, state.settings.paused ? 'Resume all' : 'Pause all');
}

function renderDebug() {
	const details = /** @type {HTMLDetailsElement} */ ($('#debug'));
	if (!details.open || !state.client) {
		return;
	}

	const rows = state.client.pollLog().map((entry) => {
		const row = document.createElement('tr');
		const cells = [
			clock(entry.at), entry.kind, entry.ids.join(', '), entry.outcome,
			entry.httpStatus === null ? '–' : String(entry.httpStatus), `${entry.latencyMs} ms`, entry.error ?? '',
		];
		for (const text of cells) {
			const cell = document.createElement('td');
			cell.textContent = text;
			row.append(cell);
		}

		Object.assign(row.dataset, {outcome: entry.outcome, kind: entry.kind, at: String(entry.at), ids: entry.ids.join(' ')});
		return row;
	});
	$('#poll-log tbody').replaceChildren(...rows);
	$('#poll-log').dataset.renderedAt = String(Date.now());
	setText($('#health-json'), JSON.stringify(state.client.health(), null, 2));
}

function tick() {
	renderHealth();
	for (const id of state.jobs.keys()) {
		renderJob(id);
	}

	applyCollapse();

	renderDebug();
}

// ---- loading ---------------------------------------------------------------------------------------

/** The development key the server hands out in embedded mode; null elsewhere (404). */
async function embeddedKey() {
	try {
		const response = await fetch('/demo-config.json', {cache: 'no-store'});
		if (!response.ok) {
			return null;
		}

		const config = await response.json();
		return config.embedded && typeof config.api_key === 'string' ? config.api_key : null;
	} catch {
		return null;
	}
}

/**
 * The canvas agent's description and input defaults, which also proves the key works.
 * Throws ProblemError/HTTPError for a refused key, NetworkError when the server cannot be reached.
 */
async function loadAgent(apiKey) {
	let response;
	try {
		response = await fetch('/api/ai/agents', {headers: {authorization: `Bearer ${apiKey}`, accept: 'application/json'}, signal: AbortSignal.timeout(5000)});
	} catch (error) {
		throw new NetworkError('GET', '/api/ai/agents', error);
	}

	const body = await response.json().catch(() => null);
	if (!response.ok) {
		const init = {status: response.status, method: 'GET', url: response.url, headers: response.headers, body, retryAfterMs: null};
		throw body && typeof body === 'object' && body.title ? new ProblemError({...init, problem: body}) : new HTTPError(init);
	}

	const agent = body?.agents?.find((candidate) => candidate.name === AGENT);
	if (!agent) {
		throw new Error(`The server has no "${AGENT}" agent enabled.`);
	}

	return agent;
}

/** Start (or restart) with a key: check it, build the client, resume watches, list recent jobs. */
async function startSession(apiKey) {
	const keyError = $('#key-error');
	keyError.hidden = true;
	state.apiKey = apiKey;
	try {
		const agent = await loadAgent(apiKey);
		setText($('#agent-description'), agent.description ?? '');
		const properties = agent.input_schema?.properties ?? {};
		state.canvasDefaults = {
			width: Number(properties.width?.default) || state.canvasDefaults.width,
			height: Number(properties.height?.default) || state.canvasDefaults.height,
		};
	} catch (error) {
		if (error instanceof HTTPError && (error.status === 401 || error.status === 403)) {
			keyError.textContent = `The server refused this key: ${describeError(error)}`;
			keyError.hidden = false;
			$('#key-section').hidden = false;
			/** @type {HTMLInputElement} */ ($('#api-key')).focus();
			return false;
		}

		// Unreachable or failing: go on, the client's polling and breaker will say when it is back.
		notify('warning', `Could not load the agent list: ${describeError(error)}`);
	}

	for (const view of state.jobs.values()) {
		view.element.remove();
	}

	state.jobs.clear();
	$('#jobs-empty').hidden = false;
	buildClient();
	/** @type {HTMLButtonElement} */ ($('#submit')).disabled = false;
	try {
		const page = await state.client.list({agent: AGENT, limit: LIST_LIMIT});
		for (const job of page.jobs) {
			applyJob(job);
			if (!isTerminalStatus(job.status)) {
				watchJob(job.id);
			}
		}
	} catch (error) {
		notify('warning', `Could not load recent jobs: ${describeError(error)}`);
	}

	state.ticker ??= setInterval(tick, TICK_MS);
	const keyStatus = $('#key-status');
	keyStatus.hidden = !$('#key-embedded').hidden;
	setText(keyStatus, `Signed in with the key ending in …${apiKey.slice(-4)}.`);
	$('#app').dataset.ready = 'true';
	return true;
}

/**
 * Poll every unfinished job now. The client's refresh() skips paused watches, so while polling is paused
 * (all of it, or one job's) this asks the server once for each paused job; the pause itself stays.
 */
async function refreshNow() {
	const {client} = state;
	if (!client) {
		return;
	}

	client.refresh();
	const watched = client.health().jobs;
	const paused = [...state.jobs.values()].filter((view) => !view.job && watched[view.id]?.state === 'paused');
	if (paused.length === 0) {
		return;
	}

	const results = await Promise.allSettled(paused.map(async (view) => {
		const status = await client.status(view.id);
		if (isTerminalStatus(status.status)) {
			applyFinished(await client.get(view.id));
		} else {
			applyStatus(status);
		}
	}));
	const failed = results.filter((result) => result.status === 'rejected');
	if (failed.length > 0) {
		notify('warning', `Refresh failed for ${failed.length} of ${paused.length} paused jobs: ${describeError(/** @type {PromiseRejectedResult} */ (failed[0]).reason)}`);
	} else {
		notify('info', `Refreshed ${paused.length} paused ${paused.length === 1 ? 'job' : 'jobs'} once; polling stays paused.`);
	}
}

/** Another tab started watching a job: watch it here too (the tabs elect one poller between them). */
function onStorage(event) {
	if (event.key !== `${CLIENT_NAMESPACE}:state` || !event.newValue || !state.client) {
		return;
	}

	try {
		const {jobs} = JSON.parse(event.newValue);
		for (const id of Object.keys(jobs ?? {})) {
			const view = state.jobs.get(id);
			if (!view?.job && !view?.watchError) {
				watchJob(id);
			}
		}
	} catch {
		// Not ours to understand.
	}
}

// ---- wiring ----------------------------------------------------------------------------------------

function wireControls() {
	const prompt = /** @type {HTMLTextAreaElement} */ ($('#prompt'));
	const examples = $('#examples');
	for (const text of EXAMPLES) {
		const item = document.createElement('li');
		const button = document.createElement('button');
		button.type = 'button';
		button.className = 'example secondary';
		button.dataset.testid = 'example-prompt';
		button.textContent = text;
		button.addEventListener('click', () => {
			prompt.value = text;
			prompt.focus();
		});
		item.append(button);
		examples.append(item);
	}

	$('#submit-form').addEventListener('submit', async (event) => {
		event.preventDefault();
		const submitError = $('#submit-error');
		const button = /** @type {HTMLButtonElement} */ ($('#submit'));
		if (!state.client) {
			return;
		}

		const input = {
			prompt: prompt.value.trim(),
			width: Number(/** @type {HTMLInputElement} */ ($('#canvas-width')).value),
			height: Number(/** @type {HTMLInputElement} */ ($('#canvas-height')).value),
		};
		submitError.hidden = true;
		button.disabled = true;
		try {
			const job = await submitJob(input);
			applyJob(job);
			watchJob(job.id);
			notify('info', `Submitted: “${shorten(input.prompt)}”.`);
		} catch (error) {
			submitError.textContent = `Not submitted: ${describeError(error)}`;
			submitError.hidden = false;
		} finally {
			button.disabled = false;
		}
	});

	$('#key-form').addEventListener('submit', async (event) => {
		event.preventDefault();
		const key = /** @type {HTMLInputElement} */ ($('#api-key')).value.trim();
		if (key === '') {
			return;
		}

		storageSet(KEY_STORAGE, key);
		if (await startSession(key)) {
			/** @type {HTMLInputElement} */ ($('#api-key')).value = '';
			notify('info', 'API key saved in this browser.');
		}
	});

	$('#api-key-forget').addEventListener('click', () => {
		storageSet(KEY_STORAGE, null);
		$('#key-status').hidden = true;
		state.client?.close();
		state.client = null;
		state.apiKey = null;
		/** @type {HTMLButtonElement} */ ($('#submit')).disabled = true;
		$('#app').dataset.ready = 'false';
		notify('info', 'API key forgotten; polling stopped.');
	});

	$('#interval').addEventListener('change', (event) => {
		state.settings.interval = /** @type {HTMLSelectElement} */ (event.target).value;
		saveSettings();
		if (state.client) {
			buildClient();
		}
	});

	$('#long-poll').addEventListener('change', (event) => {
		state.settings.longPoll = /** @type {HTMLInputElement} */ (event.target).checked;
		saveSettings();
		if (state.client) {
			buildClient();
			notify('info', state.settings.longPoll ? 'Long-poll on.' : 'Long-poll off.');
		}
	});

	$('#pause-all').addEventListener('click', () => {
		state.settings.paused = !state.settings.paused;
		saveSettings();
		if (state.settings.paused) {
			state.client?.pause();
		} else {
			state.client?.resume();
		}

		renderControls();
		renderHealth();
		notify('info', state.settings.paused ? 'Polling paused for every job.' : 'Polling resumed.');
	});

	$('#refresh-now').addEventListener('click', () => {
		void refreshNow();
	});

	$('#debug').addEventListener('toggle', renderDebug);
	window.addEventListener('storage', onStorage);
}

async function main() {
	wireControls();
	loadSettings();
	renderControls();
	const embedded = await embeddedKey();
	if (embedded) {
		$('#key-embedded').hidden = false;
		await startSession(embedded);
		return;
	}

	$('#key-section').hidden = false;
	const saved = storageGet(KEY_STORAGE);
	if (saved) {
		await startSession(saved);
	} else {
		/** @type {HTMLInputElement} */ ($('#api-key')).focus();
	}
}

void main();
