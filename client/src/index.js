/** Public entry point of the AI jobs polling client. Types: ./index.d.ts. */

export {createJobsClient, JobsClient} from './client.js';
export {
	AbortError,
	CircuitOpenError,
	DeadlineError,
	HTTPError,
	isRetryableError,
	JobsClientError,
	NetworkError,
	ProblemError,
	TimeoutError,
} from './errors.js';
export {fullJitterDelayMs, jitterDelayMs, parseRetryAfterMs} from './backoff.js';
export {clampDelayMs, MAX_TIMER_MS} from './delay.js';
export {DEFAULTS} from './options.js';
export {isTerminalStatus, TERMINAL_STATUSES} from './schedule.js';
