// A third party's program, typed only by what openapi-typescript generates from docs/openapi.json
// (generated/api.d.ts): it submits a job, polls its status conditionally until it ends, then reads the
// result. `make contract` compiles it with `tsc --strict` and runs it against the real server
// (lro.test.js), so a contract change that breaks such a program fails the build.
//
// Usage: node generated/js/typed-client.js <base-url> <api-key>; prints a JSON summary on stdout.
import type {components, paths} from './generated/api.js';

type SubmitBody = NonNullable<paths['/api/ai/jobs']['post']['requestBody']>['content']['application/json'];
type Accepted = paths['/api/ai/jobs']['post']['responses'][202];
type StatusOperation = paths['/api/ai/jobs/{job_id}/status']['get'];
type StatusHeaders = NonNullable<StatusOperation['parameters']['header']>;
type JobStatus = StatusOperation['responses'][200]['content']['application/json'];
type Job = paths['/api/ai/jobs/{job_id}']['get']['responses'][200]['content']['application/json'];
type Problem = components['schemas']['Problem'];
type State = JobStatus['status'];

const TERMINAL: ReadonlySet<State> = new Set<State>(['succeeded', 'failed', 'cancelled']);
const MAX_POLLS = 200;

function header(response: Response, name: keyof Accepted['headers'] & string): string {
	const value = response.headers.get(name);
	if (value === null) {
		throw new Error(`the answer has no ${name} header`);
	}

	return value;
}

async function problemOf(response: Response): Promise<Error> {
	const problem = (await response.json()) as Problem;
	return new Error(`${problem.status} ${problem.code}: ${problem.detail}`);
}

async function main(baseUrl: string, apiKey: string): Promise<void> {
	const auth = {Authorization: `Bearer ${apiKey}`};
	const body: SubmitBody = {agent: 'echo', input: {payload: {hello: 'world'}, steps: 4, delay_ms: 400}};
	const submitted = await fetch(new URL('/api/ai/jobs', baseUrl), {
		method: 'POST',
		headers: {...auth, 'Content-Type': 'application/json'},
		body: JSON.stringify(body),
	});
	if (submitted.status !== 202) {
		throw await problemOf(submitted);
	}

	const accepted = (await submitted.json()) as Accepted['content']['application/json'];
	const monitor = new URL(header(submitted, 'Operation-Location'), baseUrl);
	const location = new URL(header(submitted, 'Location'), baseUrl);

	let etag: string | undefined;
	let status: JobStatus | undefined;
	let notModified = 0;
	let polls = 0;
	while (status === undefined || !TERMINAL.has(status.status)) {
		if (++polls > MAX_POLLS) {
			throw new Error(`job ${accepted.id} did not end within ${MAX_POLLS} polls`);
		}

		const conditional: StatusHeaders = etag === undefined ? {} : {'If-None-Match': etag};
		const response = await fetch(monitor, {headers: {...auth, ...conditional}});
		if (response.status === 304) {
			notModified += 1;
		} else if (response.status === 200) {
			status = (await response.json()) as JobStatus;
			etag = response.headers.get('ETag') ?? undefined;
		} else {
			throw await problemOf(response);
		}

		if (status !== undefined && TERMINAL.has(status.status)) {
			break;
		}

		// The poll hint, once in a while skipped so that the same tag is presented twice (a 304).
		const waitS = polls % 3 === 1 ? 0 : Number(response.headers.get('Retry-After') ?? '1');
		await new Promise((resolve) => {
			setTimeout(resolve, waitS * 1000);
		});
	}

	const finished = await fetch(location, {headers: auth});
	if (finished.status !== 200) {
		throw await problemOf(finished);
	}

	const job: Job = (await finished.json()) as Job;
	const progress: number = job.progress.percent;
	const pollAfterMs: number | null = job.poll_after_ms;
	process.stdout.write(`${JSON.stringify({
		id: job.id,
		status: job.status,
		result: job.result,
		error: job.error?.code ?? null,
		progress,
		pollAfterMs,
		polls,
		notModified,
	})}\n`);
}

const [baseUrl, apiKey] = process.argv.slice(2);
if (baseUrl === undefined || apiKey === undefined) {
	process.stderr.write('usage: node typed-client.js <base-url> <api-key>\n');
	process.exit(2);
}

await main(baseUrl, apiKey);
