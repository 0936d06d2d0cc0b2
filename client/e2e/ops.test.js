// The ops page in real Chromium, against the embedded mode (`make run`'s shape: no Redis, no
// Prometheus): a job key is refused with 403, an ops key shows readiness, the in-process worker,
// the backlog, and poll quality drawn as SVG sparklines by the page itself.

import assert from 'node:assert/strict';
import {after, before, test} from 'node:test';
import {openBrowser, useEmbeddedServer, waitFor} from './harness.js';

const server = useEmbeddedServer({before, after}, {stageDelayMs: 0});

/**
 * @param {import('playwright-core').BrowserContext} context
 * @param {string} key
 */
async function openOps(context, key) {
	const page = await context.newPage();
	await page.goto(`${server.baseUrl}/ops`);
	await page.locator('#ops-key').fill(key);
	await page.locator('#ops-key-use').click();
	return page;
}

test('a job key is refused with 403 and the page says which key it needs', {timeout: 60_000}, async (t) => {
	const {context, pageErrors} = await openBrowser(t);
	const page = await openOps(context, await server.createKey('e2e-ops-plain'));

	await page.locator('#app[data-state="refused-403"]').waitFor();
	assert.match(await page.locator('#ops-error').textContent() ?? '', /^403: .*--scope ops/);
	assert.equal(await page.locator('#dashboard').isHidden(), true);
	assert.deepEqual(pageErrors, []);
});

test('an ops key shows readiness, the live worker, the queue and poll quality as sparklines', {timeout: 90_000}, async (t) => {
	const {context, pageErrors, consoleErrors} = await openBrowser(t);
	const page = await openOps(context, await server.createKey('e2e-operator', {scope: 'ops'}));
	await page.locator('#app[data-state="live"]').waitFor({timeout: 15_000});

	assert.equal(await page.locator('#ready-status').textContent(), 'ok');
	const checks = await page.locator('#checks tbody tr').evaluateAll((rows) => rows.map((row) => [...row.children].map((cell) => cell.textContent)));
	assert.deepEqual(checks.map((row) => row[0]), ['database', 'broker', 'workers']);
	for (const row of checks) {
		assert.equal(row[1], 'ok');
		assert.match(row[2] ?? '', /^\d+\.\d\d ms$/);
	}

	assert.equal(await page.locator('#workers-alive').textContent(), '1');
	assert.match(await page.locator('#workers tbody tr td').nth(1).textContent() ?? '', /ago$/);

	// Real polls by a client of the service: they show up in the page's next refresh.
	const auth = {Authorization: `Bearer ${server.apiKey}`, 'Content-Type': 'application/json'};
	const submitted = await fetch(`${server.baseUrl}/api/ai/jobs`, {method: 'POST', headers: auth, body: JSON.stringify({agent: 'echo', input: {}})});
	assert.equal(submitted.status, 202);
	const {id} = await submitted.json();
	for (let poll = 0; poll < 12; poll++) {
		const response = await fetch(`${server.baseUrl}/api/ai/jobs/${id}/status`, {headers: auth});
		assert.equal(response.status, 200);
		await response.arrayBuffer();
	}

	await waitFor(async () => Number(await page.locator('#poll-count').textContent()) >= 12, {timeoutMs: 20_000, what: 'the polls to reach the page'});
	assert.equal(await page.locator('#poll-success').textContent(), '100.00 %');
	assert.match(await page.locator('#poll-p50').textContent() ?? '', /^\d+\.\d ms$/);
	assert.match(await page.locator('#poll-p95').textContent() ?? '', /^\d+\.\d ms$/);
	assert.match(await page.locator('#jobs-by-status [data-name="succeeded"]').textContent() ?? '', /^[1-9]\d*$/);

	for (const name of ['success', 'p95', 'recoveries', 'slow']) {
		const svg = page.locator(`[data-testid="spark-${name}"] svg`);
		assert.equal(await svg.count(), 1, `the ${name} sparkline is drawn`);
		assert.ok(Number(await svg.getAttribute('data-points')) >= 1);
		assert.ok(await svg.locator('polyline').count() >= 1);
	}

	assert.match(await page.locator('[data-testid="spark-success"] svg').getAttribute('aria-label') ?? '', /^poll success rate: 100\.00 %$/);
	// Everything on the page is the service's own: no request left the origin.
	assert.deepEqual(pageErrors, []);
	assert.deepEqual(consoleErrors, []);
});
