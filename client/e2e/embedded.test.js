// The demo page on the embedded mode that `make run` starts (`flask serve`: SQLite, an in-process worker,
// no Redis): it signs itself in with the server's development key, runs a job, and logs no console error.

import assert from 'node:assert/strict';
import {after, before, test} from 'node:test';
import {jobCard, openBrowser, submitPrompt, useEmbeddedServer} from './harness.js';

const server = useEmbeddedServer({before, after}, {stageDelayMs: 400});

test('the embedded page signs itself in, draws a job and logs no console error', {timeout: 60_000}, async (t) => {
	const {context, pageErrors, consoleErrors} = await openBrowser(t);
	const page = await context.newPage();
	const favicons = [];
	page.on('response', (response) => {
		if (response.url().includes('favicon')) {
			favicons.push(`${response.status()} ${response.headers()['content-type']}`);
		}
	});
	await page.goto(server.baseUrl);
	await page.locator('#app[data-ready="true"]').waitFor();

	assert.equal(await page.locator('#key-embedded').isVisible(), true);
	assert.equal(await page.locator('#key-section').isVisible(), false, 'no key to type in the embedded mode');
	const jobId = await submitPrompt(page, 'flowchart: Start -> Validate -> Save -> End');
	await jobCard(page, jobId).locator('[data-testid="job-drawing"]').waitFor({timeout: 20_000});

	assert.equal(await page.locator('link[rel="icon"]').getAttribute('href'), '/demo/favicon.svg');
	const favicon = await fetch(`${server.baseUrl}/demo/favicon.svg`);
	assert.equal(favicon.status, 200);
	assert.match(favicon.headers.get('content-type') ?? '', /^image\/svg\+xml/);
	assert.deepEqual(favicons.filter((entry) => !entry.startsWith('200 ')), [], 'the favicon the page asks for exists');
	assert.deepEqual(pageErrors, []);
	assert.deepEqual(consoleErrors, []);
});

test('an open page follows the embedded server to a new development key after a restart', {timeout: 90_000}, async (t) => {
	const {context, pageErrors, consoleErrors} = await openBrowser(t);
	const page = await context.newPage();
	await page.goto(server.baseUrl);
	await page.locator('#app[data-ready="true"]').waitFor();
	const oldKey = server.apiKey;

	await server.restart({DEV_API_KEY: 'dev_restarted-with-another-key'});
	assert.notEqual(server.apiKey, oldKey);
	const jobId = await submitPrompt(page, 'three red circles in a row');
	await jobCard(page, jobId).locator('[data-testid="job-drawing"]').waitFor({timeout: 20_000});

	assert.equal(await page.locator('#submit-error').isVisible(), false, 'the submit went through after the page followed the key');
	await page.locator('#notifications [data-testid="notice"]', {hasText: 'new development key'}).waitFor();
	assert.deepEqual(pageErrors, []);
	// The one refused submit is the browser's only complaint.
	assert.equal(consoleErrors.length, 1, consoleErrors.join('\n'));
	assert.match(consoleErrors[0], /401/);
});
