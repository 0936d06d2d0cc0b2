// Compiled by `npm run typecheck` only: the public types read the way a TypeScript user would use them.
import {
	createJobsClient,
	DeadlineError,
	ProblemError,
	type Job,
	type JobStatus,
	type HealthReport,
} from '../src/index.js';

const client = createJobsClient({baseUrl: 'https://jobs.example', apiKey: 'key', longPoll: true, batch: {minJobs: 3}});
const tokenClient = createJobsClient({baseUrl: 'https://jobs.example', getToken: async () => 'token', storage: null});

client.addEventListener('progress', (event) => {
	const percent: number | null | undefined = event.detail.progress?.percent;
	void percent;
});
client.addEventListener('breakerchange', (event) => {
	const state: 'closed' | 'open' | 'half-open' = event.detail.state;
	void state;
});

async function example(): Promise<void> {
	const job: Job<{prompt: string}> = await client.submit('summarize', {prompt: 'hi'}, {requestId: 'r-1'});
	try {
		const done: Job = await client.watch(job.id, {onUpdate: (status: JobStatus) => void status.progress});
		void done.result;
	} catch (error) {
		if (error instanceof DeadlineError) {
			void error.deadlineAt;
		} else if (error instanceof ProblemError) {
			void error.problem.detail;
		}
	}

	const report: HealthReport = client.health();
	void report.jobs[job.id]?.nextPollAt;
	tokenClient.close();
}

void example;
