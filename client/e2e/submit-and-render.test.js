// Submitting from the demo page against the real API and worker: progress as the server reports it, and
// the result drawn as SVG. Stages last 400 ms, so a job runs for about 1.6 s.

import assert from 'node:assert/strict';
import {after, before, test} from 'node:test';
import {jobCard, openBrowser, openDemo, recordProgress, submitPrompt, useStack, VIEWPORT} from './harness.js';

const stack = useStack({before, after}, {stageDelayMs: 400, redisDb: 12});

test('a submitted prompt moves its progress bar through the stages and ends as SVG shapes', {timeout: 60_000}, async (t) => {
	const {context, pageErrors, consoleErrors} = await openBrowser(t);
	const page = await openDemo(context, stack, await stack.createKey('e2e-progress'));
	// Long-poll answers as soon as the job changes, so every stage of a short job reaches the page.
	await page.locator('#long-poll').check();
	const seen = await recordProgress(page);

	const jobId = await submitPrompt(page, 'three red circles in a row');
	const card = jobCard(page, jobId);
	await card.locator('[data-testid="job-drawing"]').waitFor({timeout: 20_000});

	assert.equal(await card.getAttribute('data-status'), 'succeeded');
	assert.equal(await card.locator('progress').getAttribute('value'), '100');
	const observed = await seen(jobId);
	const percents = [...new Set(observed.map((entry) => entry.percent).filter((percent) => percent !== null))];
	const runningPercents = percents.filter((percent) => percent > 0 && percent < 100);
	assert.ok(runningPercents.length >= 2, `the bar showed at least two values between 0 and 100, saw ${JSON.stringify(percents)}`);
	assert.deepEqual(percents, [...percents].sort((a, b) => a - b), 'the bar never went backwards');
	const stages = new Set(observed.map((entry) => entry.stage.split(':')[0]).filter((stage) => ['parse', 'plan', 'layout', 'validate'].includes(stage)));
	assert.ok(stages.size >= 2, `at least two stages were shown, saw ${[...stages].join(', ')}`);

	const circles = card.locator('[data-testid="job-drawing"] [data-object-type="ellipse"] ellipse');
	assert.equal(await circles.count(), 3);
	for (const fill of await circles.evaluateAll((elements) => elements.map((element) => element.getAttribute('fill')))) {
		assert.match(fill, /^#[0-9a-f]{6}$/i);
	}

	assert.match(await card.locator('[data-testid="job-stage"]').textContent(), /3 red circles/i);
	assert.deepEqual(pageErrors, []);
	assert.deepEqual(consoleErrors, []);
});

test('a finished flowchart is drawn as four labelled boxes joined by three arrows', {timeout: 60_000}, async (t) => {
	const {context, pageErrors, consoleErrors} = await openBrowser(t);
	const page = await openDemo(context, stack, await stack.createKey('e2e-flowchart'));
	await page.getByRole('button', {name: 'flowchart: Start -> Validate -> Save -> End'}).click();
	assert.equal(await page.locator('#prompt').inputValue(), 'flowchart: Start -> Validate -> Save -> End');

	const jobId = await submitPrompt(page, 'flowchart: Start -> Validate -> Save -> End');
	const drawing = jobCard(page, jobId).locator('[data-testid="job-drawing"]');
	await drawing.waitFor({timeout: 20_000});

	const boxes = drawing.locator('[data-object-type="rect"]');
	assert.deepEqual(await boxes.locator('text').allTextContents(), ['Start', 'Validate', 'Save', 'End']);
	const arrows = drawing.locator('[data-object-type="arrow"] line');
	assert.equal(await arrows.count(), 3);
	for (const marker of await arrows.evaluateAll((lines) => lines.map((line) => line.getAttribute('marker-end')))) {
		assert.match(marker, /^url\(#.+\)$/, 'each arrow has an arrowhead');
	}

	assert.equal(await drawing.getAttribute('role'), 'img');
	assert.match(await drawing.locator('title').textContent(), /flowchart of 4 steps/i);
	if (process.env.E2E_SCREENSHOT) {
		await page.locator('#debug').evaluate((details) => {
			details.open = true;
		});
		await page.locator('#poll-log tbody tr').first().waitFor();
		await page.screenshot({path: process.env.E2E_SCREENSHOT, fullPage: true});
	}

	assert.deepEqual(pageErrors, []);
	assert.deepEqual(consoleErrors, []);
});

test('a star and a triangle are drawn as polygons', {timeout: 60_000}, async (t) => {
	const {context, pageErrors, consoleErrors} = await openBrowser(t);
	const page = await openDemo(context, stack, await stack.createKey('e2e-polygons'));
	const jobId = await submitPrompt(page, 'a big yellow star next to a small green triangle');
	const drawing = jobCard(page, jobId).locator('[data-testid="job-drawing"]');
	await drawing.waitFor({timeout: 20_000});

	const starPoints = await drawing.locator('[data-object-type="star"] polygon').getAttribute('points');
	const trianglePoints = await drawing.locator('[data-object-type="triangle"] polygon').getAttribute('points');
	assert.equal(starPoints.trim().split(/\s+/).length, 10, 'a five-pointed star has ten corners');
	assert.equal(trianglePoints.trim().split(/\s+/).length, 3);
	const star = await drawing.locator('[data-object-type="star"] polygon').boundingBox();
	const triangle = await drawing.locator('[data-object-type="triangle"] polygon').boundingBox();
	assert.ok(star.width > triangle.width && star.height > triangle.height, 'the big star is bigger than the small triangle');
	assert.deepEqual(pageErrors, []);
	assert.deepEqual(consoleErrors, []);
});

// Colours as demo.css sets them: --bad, the cancelled grey, and the blue accent of running jobs.
const FAILED_RED = 'rgb(198, 40, 40)';
const CANCELLED_GREY = 'rgb(110, 119, 129)';
const RUNNING_BLUE = 'rgb(11, 95, 204)';
const FINISH_WORDS = /\b(Succeeded|Failed|Cancelled|Finished) at\b/g;

/** @param {import('playwright-core').Locator} card */
async function barColour(card) {
	return card.locator('progress').evaluate((bar) => getComputedStyle(bar).accentColor);
}

/** @param {import('playwright-core').Locator} card */
async function finishLines(card) {
	return (await card.evaluate((element) => /** @type {HTMLElement} */ (element).innerText)).match(FINISH_WORDS) ?? [];
}

test('a failed job looks failed: a red bar, one finish line, and the error with a prompt that fits', {timeout: 60_000}, async (t) => {
	const {context, pageErrors, consoleErrors} = await openBrowser(t);
	const page = await openDemo(context, stack, await stack.createKey('e2e-failed'));

	const jobId = await submitPrompt(page, '60 circles');
	const card = jobCard(page, jobId);
	await card.locator('[data-testid="job-error"]').waitFor({timeout: 20_000});

	assert.equal(await card.getAttribute('data-status'), 'failed');
	assert.equal(await barColour(card), FAILED_RED);
	assert.deepEqual(await finishLines(card), ['Failed at']);
	assert.match(await card.locator('[data-testid="job-error"]').textContent(), /^does_not_fit: .*try '.+', which fits this 1200x800 canvas$/);
	assert.equal(await card.locator('[data-testid="job-drawing"]').count(), 0);
	assert.deepEqual(pageErrors, []);
	assert.deepEqual(consoleErrors, []);
});

test('a cancelled job looks cancelled: a grey bar and one finish line', {timeout: 60_000}, async (t) => {
	const {context, pageErrors, consoleErrors} = await openBrowser(t);
	const page = await openDemo(context, stack, await stack.createKey('e2e-cancelled'));

	const jobId = await submitPrompt(page, 'three red circles in a row');
	const card = jobCard(page, jobId);
	assert.equal(await barColour(card), RUNNING_BLUE, 'an unfinished job has the blue bar');
	await card.locator('[data-testid="job-cancel"]').click();
	await page.locator(`[data-testid="job"][data-job-id="${jobId}"][data-status="cancelled"]`).waitFor({timeout: 20_000});

	assert.equal(await barColour(card), CANCELLED_GREY);
	assert.deepEqual(await finishLines(card), ['Cancelled at']);
	assert.equal(await card.locator('[data-testid="job-cancel"]').isVisible(), false);
	assert.deepEqual(pageErrors, []);
	assert.deepEqual(consoleErrors, []);
});

test('twenty jobs fit in two screens: older finished cards collapse to one line and open on demand', {timeout: 120_000}, async (t) => {
	const {context, pageErrors, consoleErrors} = await openBrowser(t);
	const apiKey = await stack.createKey('e2e-twenty');
	const headers = {authorization: `Bearer ${apiKey}`, 'content-type': 'application/json'};
	const prompts = ['three red circles in a row', '60 circles', 'flowchart: Start -> Validate -> Save -> End', 'asdf qwerty', 'a 2x3 grid of blue squares labelled A to F'];
	for (let index = 0; index < 20; index += 1) {
		const response = await fetch(`${stack.baseUrl}/api/ai/jobs`, {method: 'POST', headers, body: JSON.stringify({agent: 'canvas', input: {prompt: prompts[index % prompts.length]}})});
		assert.equal(response.status, 202);
	}

	const page = await openDemo(context, stack, apiKey);
	await page.locator('[data-testid="job"]').nth(19).waitFor();
	await page.waitForFunction(() => document.querySelectorAll('[data-testid="job"][data-status="succeeded"], [data-testid="job"][data-status="failed"]').length === 20, null, {timeout: 60_000});
	await page.reload();
	await page.locator('#app[data-ready="true"]').waitFor();
	await page.waitForFunction(() => document.querySelectorAll('[data-testid="job"][data-collapsed="true"]').length === 19);

	const cards = page.locator('[data-testid="job"]');
	assert.equal(await cards.count(), 20);
	assert.deepEqual(await cards.evaluateAll((elements) => elements.map((element) => element.getAttribute('data-collapsed'))), [
		'false', ...Array.from({length: 19}, () => 'true'),
	], 'the newest finished card stays open');
	const listHeight = await page.locator('#jobs').evaluate((list) => list.getBoundingClientRect().height);
	assert.ok(listHeight <= 2 * VIEWPORT.height, `20 jobs take ${listHeight} px, at most two screens of ${VIEWPORT.height} px`);
	for (const height of await cards.evaluateAll((elements) => elements.slice(1).map((element) => element.getBoundingClientRect().height))) {
		assert.ok(height < 50, `a collapsed card is one line (${height} px)`);
	}

	if (process.env.E2E_SCREENSHOT_JOBS) {
		await page.screenshot({path: process.env.E2E_SCREENSHOT_JOBS, fullPage: true});
	}

	const older = cards.nth(5);
	assert.equal(await older.locator('[data-testid="job-finish"]').isVisible(), true, 'a collapsed card still says how it ended');
	await older.locator('[data-testid="job-toggle"]').click();
	assert.equal(await older.getAttribute('data-collapsed'), 'false');
	assert.equal(await older.locator('[data-testid="job-toggle"]').getAttribute('aria-expanded'), 'true');
	if (await older.getAttribute('data-status') === 'succeeded') {
		await older.locator('[data-testid="job-drawing"]').waitFor();
	} else {
		await older.locator('[data-testid="job-error"]').waitFor();
	}

	assert.deepEqual(pageErrors, []);
	assert.deepEqual(consoleErrors, []);
});
