/**
 * Rate-limit refusals in the audit log, counted instead of written one by one: a flood of 429s
 * must not flood the log until real events are dropped (docs/http-api.md, "Audit").
 *
 * At most one `rate-limit.refused` row per policy, subject and clock minute (UTC, from the
 * minute's first millisecond), holding in `details.refusals` how many refusals it stands for. The
 * subject is the user when the refused request was authenticated (the row's `userId`), else the
 * client address as a keyed hash (`details.ipHash`, never the address). A minute's rows are
 * written once it is over (a timer, or the first refusal of a later minute) and, for the minute
 * under way, when the service closes. Each instance counts the refusals it answered: with several
 * instances a subject refused by two of them in one minute has one row from each.
 *
 * Memory is bounded: at most {@link MAX_SUBJECTS_PER_MINUTE} subjects are counted per minute;
 * refusals of further subjects in that minute are folded into one row per policy with
 * `details.subject` = `others` (their count, without who).
 *
 * @module
 */
import type { AuditEvent } from './audit.js';

/** Distinct policy-and-subject pairs counted in one minute; the rest are folded per policy. */
export const MAX_SUBJECTS_PER_MINUTE = 1000;

const MINUTE_MS = 60_000;
/** A minute's rows are written this long after it ends, so a refusal at its last instant counts. */
const WRITE_DELAY_MS = 50;

/** One refusal as the service answered it. */
export interface RateLimitRefusal {
  /** The policy that refused (named by the answer's `RateLimit` header). */
  readonly policy: string;
  /** The authenticated user, or null. */
  readonly userId: string | null;
  /** For a request without a user: a keyed hash of the client address. */
  readonly ipHash: string | null;
  /** The service's id of the refused request; a row keeps its first refusal's. */
  readonly requestId: string;
}

export interface RateLimitRefusalsOptions {
  /** Where the rows go: the service's AuditLog. */
  readonly audit: { record(event: AuditEvent): void };
  /** Distinct subjects per minute. Default {@link MAX_SUBJECTS_PER_MINUTE}. */
  readonly maxSubjectsPerMinute?: number;
  /** The clock minutes are read from (tests). Default Date.now. */
  readonly nowMs?: () => number;
}

interface Tally {
  readonly policy: string;
  readonly subject: 'user' | 'ip' | 'others';
  readonly userId: string | null;
  readonly ipHash: string | null;
  readonly requestId: string;
  refusals: number;
}

/** One minute's tallies; `subjects` counts those of named subjects (the folded ones are apart). */
interface Minute {
  readonly tallies: Map<string, Tally>;
  subjects: number;
}

export class RateLimitRefusals {
  readonly #audit: { record(event: AuditEvent): void };
  readonly #maxSubjects: number;
  readonly #nowMs: () => number;
  /** By minute start (ms since the epoch). */
  readonly #minutes = new Map<number, Minute>();
  #timer: NodeJS.Timeout | undefined;

  constructor(options: RateLimitRefusalsOptions) {
    this.#audit = options.audit;
    this.#maxSubjects = options.maxSubjectsPerMinute ?? MAX_SUBJECTS_PER_MINUTE;
    if (!Number.isInteger(this.#maxSubjects) || this.#maxSubjects < 0) {
      throw new RangeError('maxSubjectsPerMinute must be a non-negative integer');
    }
    this.#nowMs = options.nowMs ?? Date.now;
  }

  /** Counts one refusal in the current minute; never throws, never waits. */
  count(refusal: RateLimitRefusal): void {
    const minuteStartMs = minuteOf(this.#nowMs());
    this.#writeMinutesBefore(minuteStartMs);
    let minute = this.#minutes.get(minuteStartMs);
    if (minute === undefined) {
      minute = { tallies: new Map(), subjects: 0 };
      this.#minutes.set(minuteStartMs, minute);
    }
    const named =
      refusal.userId !== null
        ? { subject: 'user' as const, userId: refusal.userId, ipHash: null }
        : { subject: 'ip' as const, userId: null, ipHash: refusal.ipHash };
    const namedKey = `${refusal.policy}\0${named.subject}\0${named.userId ?? named.ipHash ?? ''}`;
    const existing = minute.tallies.get(namedKey);
    if (existing !== undefined) {
      existing.refusals += 1;
    } else if (minute.subjects < this.#maxSubjects) {
      minute.subjects += 1;
      minute.tallies.set(namedKey, {
        policy: refusal.policy,
        ...named,
        requestId: refusal.requestId,
        refusals: 1,
      });
    } else {
      const foldedKey = `${refusal.policy}\0others`;
      const folded = minute.tallies.get(foldedKey);
      if (folded !== undefined) folded.refusals += 1;
      else {
        minute.tallies.set(foldedKey, {
          policy: refusal.policy,
          subject: 'others',
          userId: null,
          ipHash: null,
          requestId: refusal.requestId,
          refusals: 1,
        });
      }
    }
    this.#scheduleWrite(minuteStartMs);
  }

  /** Writes every minute counted so far, the current one too (when the service closes). */
  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#writeMinutesBefore(Number.POSITIVE_INFINITY);
  }

  /** Writes, oldest first, the minutes that began before `minuteStartMs`. */
  #writeMinutesBefore(minuteStartMs: number): void {
    for (const [startMs, minute] of [...this.#minutes].sort(([a], [b]) => a - b)) {
      if (startMs >= minuteStartMs) continue;
      this.#minutes.delete(startMs);
      for (const tally of minute.tallies.values()) this.#audit.record(rowOf(startMs, tally));
    }
  }

  /** A timer for the end of the earliest minute still counting. */
  #scheduleWrite(minuteStartMs: number): void {
    if (this.#timer !== undefined) return;
    const delayMs = Math.max(0, minuteStartMs + MINUTE_MS - this.#nowMs()) + WRITE_DELAY_MS;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const current = minuteOf(this.#nowMs());
      this.#writeMinutesBefore(current);
      if (this.#minutes.has(current)) this.#scheduleWrite(current);
    }, delayMs);
    // The minute under way is written by close(); a timer alone keeps no process alive.
    this.#timer.unref();
  }
}

/**
 * The policy that refused, named by the answer's `RateLimit` header (`"auth";r=0;t=12`, the IETF
 * draft's form) with nothing remaining; `unknown` for a 429 no policy made (too many event
 * streams, whose answer may carry a policy that still had room).
 */
export function refusingPolicy(header: unknown): string {
  const text = Array.isArray(header) ? (header as unknown[])[0] : header;
  if (typeof text !== 'string') return 'unknown';
  const match = /^"([^"]{1,64})";r=0(?:;|$)/.exec(text);
  return match?.[1] ?? 'unknown';
}

function minuteOf(ms: number): number {
  return Math.floor(ms / MINUTE_MS) * MINUTE_MS;
}

function rowOf(minuteStartMs: number, tally: Tally): AuditEvent {
  return {
    type: 'rate-limit.refused',
    outcome: 'failure',
    userId: tally.userId,
    requestId: tally.requestId,
    details: {
      policy: tally.policy,
      subject: tally.subject,
      ...(tally.ipHash === null ? {} : { ipHash: tally.ipHash }),
      refusals: tally.refusals,
      minuteStartMs,
    },
  };
}
