// Submitting from the demo page against the real API and worker: progress as the server reports it, and
// the result drawn as SVG. Stages last 400 ms, so a job runs for about 1.6 s.

import assert from 'node:assert/strict';
import {after, before, test} from 'node:test';
import {jobCard, openBrowser, openDemo, recordProgress, submitPrompt, useStack} from './harness.js';

const stack = useStack({before, after}, {stageDelayMs: 400, redisDb: 12});

test('a submitted prompt moves its progress bar through the stages and ends as SVG shapes', {timeout: 60_000}, async (t) => {
	const {context, pageErrors} = await openBrowser(t);
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
});

test('a finished flowchart is drawn as four labelled boxes joined by three arrows', {timeout: 60_000}, async (t) => {
	const {context, pageErrors} = await openBrowser(t);
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
});

test('a star and a triangle are drawn as polygons', {timeout: 60_000}, async (t) => {
	const {context, pageErrors} = await openBrowser(t);
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
});
