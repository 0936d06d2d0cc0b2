// Hand-written types of the public API. The implementation (index.js and its modules) is checked
// against these with `npm run typecheck`.

// ---- wire types ----------------------------------------------------------------------------------

export type JobStatusName = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

export interface JobProgress {
	percent: number | null;
	stage: string | null;
	message: string | null;
}

export interface JobErrorInfo {
	code: string;
	message: string;
	retryable: boolean;
}

export interface JobLinks {
	self: string;
	status: string;
	cancel: string;
	events: string;
}

/** A job as GET /api/ai/jobs/{id} returns it. */
export interface Job<Input = unknown, Result = unknown> {
	id: string;
	agent: string;
	status: JobStatusName;
	input: Input;
	request_id: string | null;
	progress: JobProgress | null;
	result: Result | null;
	error: JobErrorInfo | null;
	attempts: number;
	version: number;
	created_at: string;
	started_at: string | null;
	finished_at: string | null;
	updated_at: string;
	estimated_completion_at: string | null;
	cancel_requested_at: string | null;
	links: JobLinks;
}

/** The light status view polled from GET /api/ai/jobs/{id}/status and the batch endpoint. */
export interface JobStatus {
	id: string;
	status: JobStatusName;
	progress: JobProgress | null;
	version: number;
	created_at: string;
	started_at: string | null;
	finished_at: string | null;
	updated_at: string;
	estimated_completion_at: string | null;
	queue_position: number | null;
	error: JobErrorInfo | null;
	/** The server's suggested delay before the next poll; null once terminal. */
	poll_after_ms: number | null;
}

export interface JobsPage<Input = unknown, Result = unknown> {
	jobs: Array<Job<Input, Result>>;
	next_cursor: string | null;
}

export interface ListQuery {
	status?: JobStatusName;
	agent?: string;
	requestId?: string;
	limit?: number;
	cursor?: string;
}

/** RFC 9457 problem details. */
export interface Problem {
	type?: string;
	title?: string;
	status?: number;
	detail?: string;
	instance?: string;
	errors?: unknown;
	[extension: string]: unknown;
}

// ---- options -------------------------------------------------------------------------------------

export interface StorageLike {
	getItem(key: string): string | null;
	setItem(key: string, value: string): void;
	removeItem(key: string): void;
}

export interface EventTargetLike {
	addEventListener(type: string, listener: () => void): void;
	removeEventListener(type: string, listener: () => void): void;
}

export interface DocumentLike extends EventTargetLike {
	visibilityState?: string;
	hidden?: boolean;
}

export interface LockManagerLike {
	request(
		name: string,
		options: {ifAvailable?: boolean; steal?: boolean; signal?: AbortSignal},
		callback: (lock: unknown) => unknown,
	): Promise<unknown>;
}

export interface BroadcastChannelLike {
	postMessage(message: unknown): void;
	close(): void;
	onmessage: ((event: {data: unknown}) => void) | null;
}

export type BroadcastChannelConstructor = new (name: string) => BroadcastChannelLike;

interface JobsClientBaseOptions {
	/** Absolute http(s) URL the /api/ai paths are appended to. */
	baseUrl: string;
	/** fetch implementation. Default: globalThis.fetch. */
	fetch?: typeof fetch;
	/** Where watches are persisted for resumeWatches(); null disables. Default: localStorage when present. */
	storage?: StorageLike | null;
	/** Prefix of the storage key, lock names and channel name. Default: 'ai-jobs'. */
	namespace?: string;
	/** Steady poll interval per status when the server sends no hint. Default: {queued: 2000, running: 1000}. */
	intervalMs?: {queued?: number; running?: number};
	/** Floor applied to server hints. Default: 250. In long-poll mode, the least time between two requests. */
	minIntervalMs?: number;
	/** Cap applied to server hints. Default: 60000. */
	maxIntervalMs?: number;
	/** Interval while the document is hidden (polling slows, never stops). Default: 30000. */
	hiddenIntervalMs?: number;
	/** Random spread of steady polls, ±ratio. Default: 0.1. */
	jitterRatio?: number;
	/** Per-request timeout; long polls get waitSeconds on top. Infinity disables. Default: 10000. */
	requestTimeoutMs?: number;
	/** Total time a watch may take before it rejects with DeadlineError. Infinity disables. Default: 3600000. */
	deadlineMs?: number;
	/** Failure handling: full-jitter backoff, Retry-After honoured up to maxRetryAfterMs. */
	retry?: {
		/** Attempts per one-shot call, and consecutive failed polls before a watch gives up. Default: 10. */
		maxAttempts?: number;
		/** Default: 500. */
		baseDelayMs?: number;
		/** Default: 30000. */
		maxDelayMs?: number;
		/** Default: 300000. */
		maxRetryAfterMs?: number;
	};
	/** Client-wide circuit breaker. */
	breaker?: {
		/** Consecutive server failures that open it. Default: 5. */
		failureThreshold?: number;
		/** Time open before a half-open probe. Default: 30000. */
		coolDownMs?: number;
	};
	/** Batch polling through POST /api/ai/jobs/statuses; false polls every job alone. */
	batch?: false | {
		/** Due jobs needed for a batch request. Default: 2. */
		minJobs?: number;
		/** Jobs per batch request (the server accepts 100). Default: 100. */
		maxJobs?: number;
		/** Jobs due within this window join a batch early. Default: 250. */
		windowMs?: number;
	};
	/** Use ?wait= long polls so updates arrive as they happen. Default: false. */
	longPoll?: boolean;
	/** Server hold time of a long poll, 1..30. Default: 25. */
	waitSeconds?: number;
	/** Entries kept by pollLog(). Default: 100. */
	pollLogSize?: number;
	/** Source of visibilitychange; null ignores visibility. Default: globalThis.document. */
	document?: DocumentLike | null;
	/** Source of online/offline events; null ignores them. Default: globalThis when it is an EventTarget. */
	window?: EventTargetLike | null;
	/** Web Locks for the cross-tab election; null makes every tab poll. Default: navigator.locks. */
	locks?: LockManagerLike | null;
	/** Channel for sharing updates across tabs; null makes every tab poll. Default: globalThis.BroadcastChannel. */
	BroadcastChannel?: BroadcastChannelConstructor | null;
	/** Source of randomness in [0, 1) for jitter. Default: Math.random. */
	random?: () => number;
}

export type JobsClientOptions = JobsClientBaseOptions & (
	| {apiKey: string; getToken?: undefined}
	| {getToken: () => string | Promise<string>; apiKey?: undefined}
);

export const DEFAULTS: Readonly<{
	namespace: string;
	intervalMs: Readonly<{queued: number; running: number}>;
	minIntervalMs: number;
	maxIntervalMs: number;
	hiddenIntervalMs: number;
	jitterRatio: number;
	requestTimeoutMs: number;
	deadlineMs: number;
	retry: Readonly<{maxAttempts: number; baseDelayMs: number; maxDelayMs: number; maxRetryAfterMs: number}>;
	breaker: Readonly<{failureThreshold: number; coolDownMs: number}>;
	batch: Readonly<{minJobs: number; maxJobs: number; windowMs: number}>;
	longPoll: boolean;
	waitSeconds: number;
	pollLogSize: number;
}>;

// ---- client --------------------------------------------------------------------------------------

export type WatchState = 'active' | 'paused' | 'backing-off' | 'failed' | 'done';
export type BreakerState = 'closed' | 'open' | 'half-open';

export interface CallOptions {
	signal?: AbortSignal;
}

export interface SubmitOptions extends CallOptions {
	/** Idempotency key; generated when absent so retries cannot create the job twice. */
	requestId?: string;
}

export interface WatchOptions {
	/** Called with every new status version (and at once with the last known one). */
	onUpdate?: (status: JobStatus) => void;
	/** Aborting rejects this watch() promise; the job stays watched while other callers wait on it. */
	signal?: AbortSignal;
	/** Overrides the client's deadlineMs for a new watch. */
	deadlineMs?: number;
}

export interface ResumeOptions {
	onUpdate?: (status: JobStatus) => void;
	signal?: AbortSignal;
}

export interface PollLogEntry {
	/** Epoch ms when the request started. */
	at: number;
	kind: 'status' | 'batch' | 'job';
	ids: string[];
	outcome: 'updated' | 'not-modified' | 'error';
	httpStatus: number | null;
	latencyMs: number;
	/** Error name when outcome is 'error'. */
	error: string | null;
}

export interface WatchHealth {
	state: WatchState;
	/** 'leader' polls; 'follower' hears from the leading tab; null while electing or paused. */
	role: 'leader' | 'follower' | null;
	/** Epoch ms of the next poll from this tab, null when none is planned. */
	nextPollAt: number | null;
	attempt: number;
	version: number | null;
	status: JobStatusName | null;
	deadlineAt: number | null;
}

export interface HealthReport {
	/** Share of logged polls that got a healthy answer; null before the first poll. */
	successRate: number | null;
	p50LatencyMs: number | null;
	p95LatencyMs: number | null;
	consecutiveFailures: number;
	lastSuccessAt: number | null;
	breaker: BreakerState;
	paused: boolean;
	offline: boolean;
	hidden: boolean;
	jobs: Record<string, WatchHealth>;
}

export interface JobsClientEventMap {
	update: {id: string; status: JobStatus};
	progress: {id: string; progress: JobProgress | null; status: JobStatus};
	done: {id: string; job: Job};
	error: {id: string; error: unknown; final: boolean};
	breakerchange: {state: BreakerState; previous: BreakerState};
	statechange: {id: string; state: WatchState; previous: WatchState | null};
}

export class JobsClient extends EventTarget {
	constructor(options: JobsClientOptions);
	submit<Input = unknown>(agent: string, input: Input, options?: SubmitOptions): Promise<Job<Input>>;
	get(id: string, options?: CallOptions): Promise<Job>;
	status(id: string, options?: CallOptions): Promise<JobStatus>;
	cancel(id: string, options?: CallOptions): Promise<Job>;
	list(query?: ListQuery, options?: CallOptions): Promise<JobsPage>;
	/** Resolves with the full terminal Job (succeeded, failed or cancelled alike). */
	watch(id: string, options?: WatchOptions): Promise<Job>;
	resumeWatches(options?: ResumeOptions): Map<string, Promise<Job>>;
	unwatch(id: string): boolean;
	refresh(id?: string): void;
	pause(id?: string): void;
	resume(id?: string): void;
	health(): HealthReport;
	pollLog(): PollLogEntry[];
	close(): void;
	stop(): void;
	addEventListener<K extends keyof JobsClientEventMap>(
		type: K,
		listener: (event: CustomEvent<JobsClientEventMap[K]>) => void,
		options?: boolean | AddEventListenerOptions,
	): void;
	addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
	removeEventListener<K extends keyof JobsClientEventMap>(
		type: K,
		listener: (event: CustomEvent<JobsClientEventMap[K]>) => void,
		options?: boolean | EventListenerOptions,
	): void;
	removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void;
}

export function createJobsClient(options: JobsClientOptions): JobsClient;

// ---- errors --------------------------------------------------------------------------------------

export class JobsClientError extends Error {
	constructor(message: string, options?: {cause?: unknown});
}

export interface HTTPErrorInit {
	status: number;
	method: string;
	url: string;
	headers: Headers;
	body: unknown;
	retryAfterMs: number | null;
	message?: string;
}

export class HTTPError extends JobsClientError {
	constructor(init: HTTPErrorInit);
	status: number;
	method: string;
	url: string;
	headers: Headers;
	/** Parsed JSON body, the raw text when it was not JSON, or null. */
	body: unknown;
	retryAfterMs: number | null;
}

export class ProblemError extends HTTPError {
	constructor(init: HTTPErrorInit & {problem: Problem});
	problem: Problem;
	type: string;
	title: string;
	detail: string;
	errors: unknown;
}

export class NetworkError extends JobsClientError {
	constructor(method: string, url: string, cause: unknown);
	method: string;
	url: string;
}

export class TimeoutError extends JobsClientError {
	constructor(message: string, timeoutMs: number);
	timeoutMs: number;
}

export class DeadlineError extends TimeoutError {
	constructor(jobId: string, deadlineAt: number, timeoutMs: number);
	jobId: string;
	deadlineAt: number;
}

export class CircuitOpenError extends JobsClientError {
	constructor(retryAt: number);
	/** Epoch ms when requests may go again; Infinity while a half-open probe is in flight. */
	retryAt: number;
}

export class AbortError extends JobsClientError {
	constructor(message: string);
}

export function isRetryableError(error: unknown): boolean;

// ---- helpers -------------------------------------------------------------------------------------

export const MAX_TIMER_MS: number;
export function clampDelayMs(ms: number): number;
export function fullJitterDelayMs(
	retryIndex: number,
	options: {baseDelayMs: number; maxDelayMs: number},
	random?: () => number,
): number;
export function jitterDelayMs(ms: number, ratio: number, random?: () => number): number;
export function parseRetryAfterMs(value: string | null | undefined, now?: number): number | null;
export const TERMINAL_STATUSES: readonly JobStatusName[];
export function isTerminalStatus(status: string | null | undefined): boolean;
