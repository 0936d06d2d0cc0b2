/**
 * Cross-tab leadership of watched jobs: which tab polls each job, how the other tabs stay informed, and
 * how they notice that the leader is gone.
 *
 * The Coordinator elects one tab per job with a Web Lock. The leader shares every new status, and it
 * sends a beat when a poll starts and when it ends: whether it is hidden, how long it expects to stay
 * quiet until its next beat (the time its requests take, then the time until its next poll), and since
 * when it leads each job. A follower that hears no beat for TAKEOVER_SILENCE_FACTOR times that long (at
 * least MIN_TAKEOVER_SILENCE_MS) steals the lock and polls itself: a frozen or hung leader keeps its lock
 * but never runs, so waiting in line for the lock would wait forever. A visible follower also takes over
 * from a hidden leader at once, since a hidden leader polls slowly. A leader that hears a newer leader of
 * its job (the tab that took over while it was frozen) steps down and follows.
 */

import {Coordinator} from './coordination.js';
import {clampDelayMs, setSafeTimeout} from './delay.js';

/** @typedef {import('./watch.js').Watch} Watch */
/** @typedef {import('./visibility.js').VisibilityManager} VisibilityManager */
/** @typedef {import('./coordination.js').LockManagerLike} LockManagerLike */
/** @typedef {import('./coordination.js').BroadcastChannelConstructor} BroadcastChannelConstructor */

/** A follower takes over after hearing nothing for this many times the leader's announced quiet time. */
export const TAKEOVER_SILENCE_FACTOR = 3;

/**
 * The least silence that counts as a dead leader, so that a busy event loop or a GC pause in a tab that
 * polls every few milliseconds does not hand its jobs around.
 */
export const MIN_TAKEOVER_SILENCE_MS = 1000;

/** Followers wait up to this share longer, at random, so that two of them rarely take over at once. */
const TAKEOVER_SPREAD_RATIO = 0.5;

/**
 * What leadership needs from the rest of the client.
 * @typedef {object} LeadershipHandlers
 * @property {(id: string) => Watch | undefined} find the current watch of a job
 * @property {() => Iterable<Watch>} watches every current watch
 * @property {(w: Watch) => void} onLead this tab now polls the job
 * @property {(w: Watch) => void} onFollow another tab polls the job
 * @property {(w: Watch, status: unknown, etag: string | null) => void} onStatus another tab shared a status
 * @property {(w: Watch, job: any) => void} onDone another tab fetched the finished job
 * @property {(w: Watch) => number} quietMsOf how long a leader of this job expects to go without a beat, from now
 * @property {(w: Watch) => boolean} canTakeOver whether this tab would poll the job if it led it now
 */

/** @returns {string} an id that orders two leaders that started leading in the same millisecond */
function newTabId() {
	return [...crypto.getRandomValues(new Uint32Array(2))].map((word) => word.toString(16).padStart(8, '0')).join('');
}

export class Leadership {
	#coordinator;
	#visibility;
	#random;
	#handlers;
	#tabId = newTabId();
	/** @type {ReturnType<typeof setTimeout> | undefined} the one timer for every follower's takeover */
	#timer;
	#closed = false;
	#unsubscribe;

	/**
	 * @param {object} options
	 * @param {LockManagerLike | null} options.locks
	 * @param {BroadcastChannelConstructor | null} options.BroadcastChannel
	 * @param {string} options.namespace
	 * @param {VisibilityManager} options.visibility
	 * @param {() => number} options.random
	 * @param {LeadershipHandlers} options.handlers
	 */
	constructor({locks, BroadcastChannel, namespace, visibility, random, handlers}) {
		this.#visibility = visibility;
		this.#random = random;
		this.#handlers = handlers;
		this.#coordinator = new Coordinator({locks, BroadcastChannel, namespace, onMessage: (message) => this.#onMessage(message)});
		this.#unsubscribe = visibility.subscribe((hidden) => this.#onVisibilityChange(hidden));
	}

	/**
	 * Join the election for a job; the leader polls, followers listen.
	 * @param {Watch} w
	 */
	elect(w) {
		w.election = this.#coordinator.elect(w.id, {
			onLeader: () => {
				if (this.#handlers.find(w.id) !== w) {
					return;
				}

				w.role = 'leader';
				w.leaderSince = Date.now();
				w.takeoverAt = null;
				this.#handlers.onLead(w);
				// At once, so that other followers reset their watch and a stale leader learns it was replaced.
				this.beat([w]);
				this.#arm();
			},
			onFollower: () => {
				if (this.#handlers.find(w.id) !== w) {
					return;
				}

				w.role = 'follower';
				w.leaderSince = null;
				this.#handlers.onFollow(w);
				this.#askLeader(w);
			},
		});
	}

	/**
	 * Leave the election: give up the lock, or stop waiting for it.
	 * @param {Watch} w
	 */
	resign(w) {
		w.election?.stop();
		w.election = null;
		w.role = null;
		w.leaderSince = null;
		w.takeoverAt = null;
		this.#arm();
	}

	/**
	 * Tell the other tabs the watch's current status.
	 * @param {Watch} w
	 */
	shareStatus(w) {
		this.#coordinator.publish({type: 'status', id: w.id, status: w.status, etag: w.etagVersion === w.version ? w.etag : null});
	}

	/**
	 * Tell the other tabs the job is finished, with the full job.
	 * @param {string} id
	 * @param {unknown} job
	 */
	shareDone(id, job) {
		this.#coordinator.publish({type: 'done', id, job});
	}

	/**
	 * A leader's sign of life for the jobs it leads among `watches`, in one message: hidden or not, how long
	 * until its next beat, and since when it leads each job (so two leaders can tell which is the newer).
	 * @param {Iterable<Watch>} watches
	 */
	beat(watches) {
		if (!this.#coordinator.enabled) {
			return;
		}

		/** @type {Record<string, number | null>} */
		const leads = {};
		let quietMs = Number.POSITIVE_INFINITY;
		for (const w of watches) {
			if (w.role === 'leader') {
				leads[w.id] = w.leaderSince;
				quietMs = Math.min(quietMs, this.#handlers.quietMsOf(w));
			}
		}

		if (quietMs === Number.POSITIVE_INFINITY) {
			return;
		}

		this.#coordinator.publish({type: 'leader', leads, hidden: this.#visibility.hidden, quietMs, tab: this.#tabId});
	}

	close() {
		this.#closed = true;
		this.#clearTimer();
		this.#unsubscribe();
		this.#coordinator.close();
	}

	/** @param {any} message */
	#onMessage(message) {
		if (typeof message !== 'object' || message === null) {
			return;
		}

		if (message.type === 'leader' && typeof message.leads === 'object' && message.leads !== null) {
			for (const [id, since] of Object.entries(message.leads)) {
				const w = this.#handlers.find(id);
				if (w) {
					this.#heardLeader(w, {...message, since});
				}
			}

			this.#arm();
			return;
		}

		if (typeof message.id !== 'string') {
			return;
		}

		const w = this.#handlers.find(message.id);
		if (!w) {
			return;
		}

		if (message.type === 'status' && message.status) {
			this.#handlers.onStatus(w, message.status, message.etag ?? null);
		} else if (message.type === 'done' && message.job) {
			this.#handlers.onDone(w, message.job);
		} else if (message.type === 'sync' && w.role === 'leader') {
			if (w.status) {
				this.shareStatus(w);
			}

			this.beat([w]);
		}
	}

	/**
	 * @param {Watch} w
	 * @param {{hidden?: unknown, quietMs?: unknown, since?: unknown, tab?: unknown}} beat
	 */
	#heardLeader(w, beat) {
		if (w.role === 'follower') {
			this.#expectBeat(w, beat.quietMs);
			if (beat.hidden === true) {
				this.#takeOverFromHiddenLeader(w);
			}
		} else if (w.role === 'leader' && this.#isNewerLeader(w, beat)) {
			// Another tab took this job over while this one was frozen. Its beat can arrive before this tab
			// learns that its lock was stolen; two pollers would then go on side by side.
			w.election?.stepDown();
		}
	}

	/**
	 * @param {Watch} w led by this tab
	 * @param {{since?: unknown, tab?: unknown}} beat
	 * @returns {boolean}
	 */
	#isNewerLeader(w, beat) {
		if (typeof beat.since !== 'number' || w.leaderSince === null) {
			return false;
		}

		return beat.since > w.leaderSince || (beat.since === w.leaderSince && String(beat.tab) > this.#tabId);
	}

	/**
	 * A visible follower takes over a job whose leader is hidden. Only from a hidden one: two visible tabs
	 * would otherwise steal the job back and forth.
	 * @param {Watch} w
	 */
	#takeOverFromHiddenLeader(w) {
		if (this.#visibility.tracked && !this.#visibility.hidden && !w.paused && w.state === 'active') {
			w.election?.claim();
		}
	}

	/**
	 * Ask the leader for its latest status and a beat. A live leader answers at once, so until it does,
	 * silence is measured against the interval this job would be polled at (never later than already due).
	 * @param {Watch} w
	 */
	#askLeader(w) {
		this.#coordinator.publish({type: 'sync', id: w.id});
		const due = w.takeoverAt;
		this.#expectBeat(w, null);
		if (due !== null && due < /** @type {number} */ (w.takeoverAt)) {
			w.takeoverAt = due;
		}

		this.#arm();
	}

	/**
	 * Start (or restart) a follower's wait for the leader's next beat.
	 * @param {Watch} w
	 * @param {unknown} quietMs what the leader announced; anything else falls back to this job's interval
	 */
	#expectBeat(w, quietMs) {
		const quiet = typeof quietMs === 'number' && quietMs >= 0 ? quietMs : this.#handlers.quietMsOf(w);
		const silenceMs = Math.max(TAKEOVER_SILENCE_FACTOR * quiet, MIN_TAKEOVER_SILENCE_MS);
		w.takeoverAt = Date.now() + clampDelayMs(silenceMs * (1 + (TAKEOVER_SPREAD_RATIO * this.#random())));
	}

	/** Arm the single timer for the earliest follower takeover. */
	#arm() {
		this.#clearTimer();
		if (this.#closed) {
			return;
		}

		let earliest = Number.POSITIVE_INFINITY;
		for (const w of this.#handlers.watches()) {
			if (w.role === 'follower' && w.takeoverAt !== null) {
				earliest = Math.min(earliest, w.takeoverAt);
			}
		}

		if (earliest === Number.POSITIVE_INFINITY) {
			return;
		}

		this.#timer = setSafeTimeout(() => {
			this.#timer = undefined;
			this.#takeOverFromSilentLeaders();
		}, earliest - Date.now());
	}

	#takeOverFromSilentLeaders() {
		const now = Date.now();
		for (const w of this.#handlers.watches()) {
			if (w.role !== 'follower' || w.takeoverAt === null || w.takeoverAt > now) {
				continue;
			}

			if (this.#handlers.canTakeOver(w)) {
				w.takeoverAt = null;
				w.election?.claim();
			} else {
				// Paused or offline here: this tab would not poll either. Look again after another silence.
				this.#expectBeat(w, null);
			}
		}

		this.#arm();
	}

	/** @param {boolean} hidden */
	#onVisibilityChange(hidden) {
		if (hidden) {
			// Going out of view: a visible follower may now take these jobs over.
			this.beat(this.#handlers.watches());
			return;
		}

		for (const w of this.#handlers.watches()) {
			if (w.role === 'follower' && !w.paused && w.state === 'active') {
				// Back in view: take over if the leader turns out to be hidden (its answer says so) or silent.
				this.#askLeader(w);
			}
		}
	}

	#clearTimer() {
		if (this.#timer !== undefined) {
			clearTimeout(this.#timer);
			this.#timer = undefined;
		}
	}
}
