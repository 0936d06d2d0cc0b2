// Polling controls and failures in a real browser against the real API and worker. Stages last 2 s, so a
// job runs for about 8 s: long enough to pause, cancel, reload, share or lose the server mid-job.
// Requests are counted where they land: in gunicorn's access log.

import assert from 'node:assert/strict';
import {after, before, test} from 'node:test';
import {setTimeout as sleep} from 'node:timers/promises';
import {jobCard, openBrowser, openDemo, openSignedInDemo, submitPrompt, useStack, waitFor} from './harness.js';

const STAGE_DELAY_MS = 2000;
const stack = useStack({before, after}, {stageDelayMs: STAGE_DELAY_MS, redisDb: 11});

// The server asks for a poll every 500 ms during a job's first 10 s (backend/jobs/hints.py); the client
// spreads steady polls by ±10 %.
const RUNNING_POLL_MS = 500;
const JITTER_RATIO = 0.1;
// A request the page aborted may still be answered (and logged) just after the click that aborted it.
const IN_FLIGHT_GRACE_MS = 300;

/** @param {import('playwright-core').Locator} card */
async function waitUntilRunning(card) {
	await card.locator('[data-testid="job-stage"]', {hasText: /^(parse|plan|layout|validate):/}).waitFor({timeout: 15_000});
	assert.equal(await card.getAttribute('data-status'), 'running');
}

/**
 * Poll attempts for `jobId` that started in [since, until), from the page's debug panel (client.pollLog()).
 * @param {import('playwright-core').Page} page
 * @param {string} jobId
 * @param {number} since
 * @param {number} until
 */
async function pollLogEntries(page, jobId, since, until) {
	await page.locator('#debug').evaluate((details) => {
		details.open = true;
	});
	// The panel re-renders on every tick of the page (500 ms); wait for a rendering newer than the window.
	await page.waitForFunction((end) => Number(document.querySelector('#poll-log')?.getAttribute('data-rendered-at')) > end, until);
	return page.locator('#poll-log tbody tr').evaluateAll((rows, {id, from, to}) => rows.filter((row) => {
		const at = Number(row.getAttribute('data-at'));
		return at >= from && at < to && (row.getAttribute('data-ids') ?? '').split(' ').includes(id);
	}).length, {id: jobId, from: since, to: until});
}

/** @param {import('playwright-core').Page} page */
function notices(page) {
	return page.locator('#notifications [data-testid="notice"]');
}

test('pausing all polling stops status requests at the server until it is resumed', {timeout: 60_000}, async (t) => {
	const {context, pageErrors} = await openBrowser(t);
	const page = await openDemo(context, stack, await stack.createKey('e2e-pause'));
	const jobId = await submitPrompt(page, 'three red circles in a row');
	const card = jobCard(page, jobId);
	await waitUntilRunning(card);
	const beforePause = stack.pollRequests(jobId).length;
	assert.ok(beforePause > 0, 'the page was polling before the pause');

	await page.locator('#pause-all').click();
	await page.locator('#pause-all[aria-pressed="true"]').waitFor();
	const pausedAt = Date.now();
	await card.locator('[data-testid="job-polling"]', {hasText: 'Polling paused.'}).waitFor();
	assert.match(await page.locator('#polling-mode').textContent(), /Paused \(all jobs\)/);
	// The pause is a stretch of time in which nothing may happen, so it is waited out.
	await sleep(3000);
	const duringPause = stack.pollRequests(jobId, {since: pausedAt + IN_FLIGHT_GRACE_MS});
	assert.deepEqual(duringPause, [], 'no status request reached the server while paused');
	t.diagnostic(`${beforePause} poll requests before the pause, ${duringPause.length} in ${Date.now() - pausedAt} ms of pause`);

	const resumedAt = Date.now();
	await page.locator('#pause-all').click();
	await page.locator('#pause-all[aria-pressed="false"]').waitFor();
	const first = await stack.nextRequest((entry) => stack.pollRequests(jobId).includes(entry), {since: resumedAt, timeoutMs: 5000, what: 'a status request after resume'});
	assert.ok(first.at - resumedAt < 2000, `resume polled at once (after ${first.at - resumedAt} ms)`);

	await card.locator('[data-testid="job-drawing"]').waitFor({timeout: 20_000});
	assert.equal(await card.getAttribute('data-status'), 'succeeded');
	assert.deepEqual(pageErrors, []);
});

test('cancelling a running job shows it as cancelled', {timeout: 60_000}, async (t) => {
	const {context, pageErrors} = await openBrowser(t);
	const apiKey = await stack.createKey('e2e-cancel');
	const page = await openDemo(context, stack, apiKey);
	const jobId = await submitPrompt(page, 'flowchart: Start -> Validate -> Save -> End');
	const card = jobCard(page, jobId);
	await waitUntilRunning(card);

	await card.locator('[data-testid="job-cancel"]').click();
	await page.locator(`[data-testid="job"][data-job-id="${jobId}"][data-status="cancelled"]`).waitFor({timeout: 15_000});

	assert.equal(await card.locator('[data-testid="job-status"]').textContent(), 'cancelled');
	assert.equal(await card.locator('[data-testid="job-stage"]').textContent(), 'Cancelled.');
	assert.equal(await card.locator('[data-testid="job-cancel"]').isHidden(), true);
	assert.equal(await card.locator('[data-testid="job-drawing"]').count(), 0);
	await notices(page).filter({hasText: 'Cancelled:'}).waitFor();
	const response = await fetch(`${stack.baseUrl}/api/ai/jobs/${jobId}`, {headers: {authorization: `Bearer ${apiKey}`}});
	assert.equal((await response.json()).status, 'cancelled', 'the server agrees');
	assert.deepEqual(pageErrors, []);
});

test('reloading the page mid-job resumes polling and the job completes', {timeout: 60_000}, async (t) => {
	const {context, pageErrors} = await openBrowser(t);
	const page = await openDemo(context, stack, await stack.createKey('e2e-reload'));
	const jobId = await submitPrompt(page, 'a 2x3 grid of blue squares labelled A to F');
	await waitUntilRunning(jobCard(page, jobId));
	const persisted = await page.evaluate(() => localStorage.getItem('ai-jobs:state'));
	assert.ok(persisted?.includes(jobId), 'the watch is persisted for the next page');

	const reloadedAt = Date.now();
	await page.reload();
	await page.locator('#app[data-ready="true"]').waitFor();
	await stack.nextRequest((entry) => stack.pollRequests(jobId).includes(entry), {since: reloadedAt, timeoutMs: 5000, what: 'a status request from the reloaded page'});
	const card = jobCard(page, jobId);
	assert.equal(await card.count(), 1, 'the job is listed once after the reload');
	await card.locator('[data-testid="job-drawing"]').waitFor({timeout: 20_000});

	assert.equal(await card.getAttribute('data-status'), 'succeeded');
	assert.equal(await card.locator('[data-testid="job-drawing"] [data-object-type="rect"]').count(), 6);
	assert.deepEqual(await card.locator('[data-testid="job-drawing"] [data-object-type="rect"] text').allTextContents(), ['A', 'B', 'C', 'D', 'E', 'F']);
	await waitFor(() => page.evaluate(() => localStorage.getItem('ai-jobs:state') === null || !localStorage.getItem('ai-jobs:state')?.includes('job_')), {what: 'the finished watch to leave storage'});
	assert.deepEqual(pageErrors, []);
});

test('two tabs watching one job poll it from one tab only', {timeout: 60_000}, async (t) => {
	const {context, pageErrors} = await openBrowser(t);
	const first = await openDemo(context, stack, await stack.createKey('e2e-tabs'));
	const jobId = await submitPrompt(first, 'three red circles in a row');
	await waitUntilRunning(jobCard(first, jobId));
	const second = await openSignedInDemo(context, stack);
	const firstCard = jobCard(first, jobId);
	const secondCard = jobCard(second, jobId);
	await secondCard.locator('[data-testid="job-stage"]', {hasText: /^(parse|plan|layout|validate):/}).waitFor();

	// One tab leads (polls); the other follows (hears updates over BroadcastChannel).
	const roles = async () => [await firstCard.getAttribute('data-role'), await secondCard.getAttribute('data-role')].sort().join('+');
	await waitFor(async () => (await roles()) === 'follower+leader', {what: 'one leader and one follower'});
	const windowStart = Date.now();
	await sleep(3000);
	const windowMs = Date.now() - windowStart;
	const polls = stack.pollRequests(jobId, {since: windowStart, until: windowStart + windowMs});
	const stillRunning = (await firstCard.getAttribute('data-status')) === 'running';

	// One poller at a 500 ms hint makes at most windowMs / 450 requests (+1 for the edges); two make twice that.
	const onePollerMax = Math.ceil(windowMs / (RUNNING_POLL_MS * (1 - JITTER_RATIO))) + 1;
	const twoPollersMin = 2 * Math.floor(windowMs / (RUNNING_POLL_MS * (1 + JITTER_RATIO)));
	assert.ok(stillRunning, 'the job ran through the whole window, so polling never stopped on its own');
	t.diagnostic(`${polls.length} poll requests for the job in ${windowMs} ms (one poller: at most ${onePollerMax})`);
	assert.ok(polls.length > 0, 'somebody polled');
	assert.ok(polls.length <= onePollerMax, `${polls.length} poll requests in ${windowMs} ms: one poller makes at most ${onePollerMax}, two at least ${twoPollersMin}`);
	assert.equal(await roles(), 'follower+leader', 'the roles held for the whole window');

	// Each tab's own poll log (its debug panel) agrees: the follower sent nothing in the window.
	const ownPolls = await Promise.all([first, second].map((page) => pollLogEntries(page, jobId, windowStart, windowStart + windowMs)));
	const byRole = {[await firstCard.getAttribute('data-role')]: ownPolls[0], [await secondCard.getAttribute('data-role')]: ownPolls[1]};
	assert.equal(byRole.follower, 0, 'the follower tab polled nothing');
	assert.ok(byRole.leader > 0, 'the leader tab did the polling');

	await firstCard.locator('[data-testid="job-drawing"]').waitFor({timeout: 20_000});
	await secondCard.locator('[data-testid="job-drawing"]').waitFor({timeout: 20_000});
	assert.equal(await secondCard.locator('[data-testid="job-drawing"] [data-object-type="ellipse"]').count(), 3);
	assert.deepEqual(pageErrors, []);
});

test('when the API goes down the page says so, and it recovers and finishes the job once the API is back', {timeout: 90_000}, async (t) => {
	const {context, pageErrors} = await openBrowser(t);
	const page = await openDemo(context, stack, await stack.createKey('e2e-outage'));
	const jobId = await submitPrompt(page, 'a big yellow star next to a small green triangle');
	const card = jobCard(page, jobId);
	await waitUntilRunning(card);

	const stoppedAt = Date.now();
	await stack.stopApi();
	await page.locator('#breaker-state[data-state="open"]').waitFor({timeout: 20_000});
	t.diagnostic(`breaker open ${Date.now() - stoppedAt} ms after the API died`);
	assert.equal(await page.locator('#breaker-state').textContent(), 'Server unreachable — retrying');
	await notices(page).filter({hasText: 'Server unreachable — retrying'}).waitFor();
	assert.notEqual(await card.getAttribute('data-status'), 'succeeded', 'the page cannot know the outcome while the API is down');

	const restartedAt = Date.now();
	await stack.startApi();
	await page.locator('#breaker-state[data-state="closed"]').waitFor({timeout: 20_000});
	t.diagnostic(`breaker closed ${Date.now() - restartedAt} ms after the restart began`);
	await notices(page).filter({hasText: 'Back online'}).waitFor();
	await card.locator('[data-testid="job-drawing"]').waitFor({timeout: 20_000});
	assert.equal(await card.getAttribute('data-status'), 'succeeded');
	assert.equal(await card.locator('[data-testid="job-drawing"] polygon').count(), 2);
	assert.deepEqual(pageErrors, []);
});

/** Poll the job's status over the API until it reaches ``status`` (at most 15 s). */
async function waitForStatus(stack, apiKey, id, status) {
	const deadline = Date.now() + 15_000;
	for (;;) {
		const response = await fetch(`${stack.baseUrl}/api/ai/jobs/${id}/status`, {headers: {authorization: `Bearer ${apiKey}`}});
		const body = await response.json();
		if (body.status === status) {
			return;
		}
		assert.ok(Date.now() < deadline, `job ${id} did not reach ${status} within 15 s; last: ${body.status}`);
		await sleep(100);
	}
}

test('a queued job first in line says "Next in line", not "Queue position 0"', {timeout: 60_000}, async (t) => {
	const {context, pageErrors, consoleErrors} = await openBrowser(t);
	const apiKey = await stack.createKey('e2e-queue');
	const page = await openDemo(context, stack, apiKey);
	// The worker runs two jobs at a time (-t 2), so the third waits with no queued job ahead of it.
	const ids = [];
	for (const prompt of ['three red circles in a row', 'a star']) {
		ids.push(await submitPrompt(page, prompt));
	}
	// Both taken by the worker before the third is submitted, so the third is first in line from its
	// very first answer (a batch poll reports queue moves only with a new version).
	for (const id of ids) {
		await waitForStatus(stack, apiKey, id, 'running');
	}
	ids.push(await submitPrompt(page, 'two green squares'));

	const third = jobCard(page, ids[2]);
	await third.locator('[data-testid="job-eta"]', {hasText: 'Next in line'}).waitFor({timeout: 15_000});
	assert.equal(await third.getAttribute('data-status'), 'queued');
	assert.doesNotMatch(await page.locator('#jobs').textContent(), /Queue position/);

	for (const id of ids) {
		await fetch(`${stack.baseUrl}/api/ai/jobs/${id}/cancel`, {method: 'POST', headers: {authorization: `Bearer ${apiKey}`}});
	}

	await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="job"]')].every((card) => card.getAttribute('data-status') === 'cancelled'), null, {timeout: 15_000});
	assert.deepEqual(pageErrors, []);
	assert.deepEqual(consoleErrors, []);
});

test('"Refresh now" while everything is paused asks the server once and leaves polling paused', {timeout: 60_000}, async (t) => {
	const {context, pageErrors, consoleErrors} = await openBrowser(t);
	const page = await openDemo(context, stack, await stack.createKey('e2e-refresh-paused'));
	const jobId = await submitPrompt(page, 'three red circles in a row');
	const card = jobCard(page, jobId);
	await waitUntilRunning(card);
	await page.locator('#pause-all').click();
	await card.locator('[data-testid="job-polling"]', {hasText: 'Polling paused.'}).waitFor();
	const pausedPercent = await card.locator('progress').getAttribute('value');
	// A stage lasts 2 s: by then the job has moved on at the server, but not on the paused page.
	await sleep(STAGE_DELAY_MS + 500);
	assert.equal(await card.locator('progress').getAttribute('value'), pausedPercent, 'nothing changed on the page while paused');

	const clickedAt = Date.now();
	await page.locator('#refresh-now').click();
	await waitFor(async () => (await card.locator('progress').getAttribute('value')) !== pausedPercent, {timeoutMs: 5000, what: 'the card to show the newer progress'});
	await notices(page).filter({hasText: 'polling stays paused'}).waitFor();
	await sleep(2000);

	const requests = stack.pollRequests(jobId, {since: clickedAt});
	assert.equal(requests.length, 1, `one status request for the refresh, then none: ${JSON.stringify(requests)}`);
	assert.match(await page.locator('#polling-mode').textContent(), /Paused \(all jobs\)/);
	assert.equal(await card.locator('[data-testid="job-polling"]').textContent(), 'Polling paused.');

	await page.locator('#pause-all').click();
	await card.locator('[data-testid="job-drawing"]').waitFor({timeout: 20_000});
	assert.deepEqual(pageErrors, []);
	assert.deepEqual(consoleErrors, []);
});
