/**
 * Distributed rate limits: GCRA in integer milliseconds on the Redis clock, `limit per period +
 * burst` exactly, several policies checked in one script and one round trip, all or nothing.
 *
 * `5/1m+2`: 7 requests may come at once, then one every 12 s; the 8th at once is refused with
 * the exact time until the next one is admitted. Subjects (user ids, IPs, emails) are HMAC'd
 * before they become part of a key, so Redis never holds them in clear. Every key lives until
 * its bucket is full again.
 *
 * On Redis Cluster every rate-limit key shares one hash tag (`{rl}`), so that any combination of
 * policies can be checked atomically: rate limiting then runs on one shard (each check is one
 * small script on a few short keys).
 *
 * What this stops: one client (or one user, or one IP) exhausting a route across all instances.
 * What it does not stop: a distributed attack spread over many subjects below each limit.
 */
import type { KeyRing } from '../crypto/keyring.js';
import type { RateLimitRule, Store } from '../store/store.js';
import { parseRateLimitPolicy, POLICY_EXPECTED, type RateLimitPolicy } from './policy.js';

export interface RateLimitDecision {
  readonly allowed: boolean;
  /** The deciding policy: the refusing one with the longest wait, or the admitting one with the least room. */
  readonly policy: string;
  /** limit + burst of that policy: how many may come at once from full. */
  readonly limit: number;
  /** Requests that may still come at once under that policy. */
  readonly remaining: number;
  /** Until that policy's allowance is full again. */
  readonly resetMs: number;
  /** Until the request would be admitted (0 when allowed). */
  readonly retryAfterMs: number;
}

export interface RateLimitsOptions {
  /** Named policies, e.g. `{ auth: '5/1m+2', api: '100/1m+10' }`. */
  readonly policies: Readonly<Record<string, string | RateLimitPolicy>>;
}

interface CompiledPolicy {
  readonly name: string;
  readonly policy: RateLimitPolicy;
  readonly intervalMs: number;
  readonly toleranceMs: number;
}

const POLICY_NAME = /^[A-Za-z0-9_-]{1,32}$/;
const MAX_SUBJECT_LENGTH = 512;

function compile(name: string, spec: string | RateLimitPolicy): CompiledPolicy {
  if (!POLICY_NAME.test(name))
    throw new TypeError(`policy name "${name}" must be 1 to 32 of A-Z a-z 0-9 _ -`);
  const policy = typeof spec === 'string' ? parseRateLimitPolicy(spec) : spec;
  if (
    !policy ||
    !Number.isSafeInteger(policy.limit) ||
    policy.limit < 1 ||
    policy.burst < 0 ||
    policy.periodMs < 1
  ) {
    throw new TypeError(`policy ${name}: expected ${POLICY_EXPECTED}`);
  }
  // Integer milliseconds; rounding the interval up keeps the limit exact or slightly stricter.
  const intervalMs = Math.ceil(policy.periodMs / policy.limit);
  return { name, policy, intervalMs, toleranceMs: (policy.limit + policy.burst - 1) * intervalMs };
}

export class RateLimits {
  private readonly policies: ReadonlyMap<string, CompiledPolicy>;

  constructor(
    private readonly store: Store,
    private readonly keyRing: KeyRing,
    options: RateLimitsOptions,
  ) {
    this.policies = new Map(
      Object.entries(options.policies).map(([name, spec]) => [name, compile(name, spec)]),
    );
  }

  /**
   * Checks one request against several policies at once, each with its subject, e.g.
   * `{ api: userId, ip: clientIp }`. Admitted only when every policy admits it, and then charged
   * to every policy; refused without charging any. A refusal is a result, not an error; the store
   * being down is StoreUnavailableError.
   */
  async check(subjects: Readonly<Record<string, string>>): Promise<RateLimitDecision> {
    const entries = Object.entries(subjects);
    if (entries.length === 0) throw new TypeError('check needs at least one policy and subject');
    const checked = entries.map(([name, subject]) => {
      const compiled = this.policies.get(name);
      if (!compiled) throw new TypeError(`unknown rate-limit policy "${name}"`);
      if (typeof subject !== 'string' || subject === '' || subject.length > MAX_SUBJECT_LENGTH) {
        throw new TypeError(
          `the subject for policy "${name}" must be 1 to ${String(MAX_SUBJECT_LENGTH)} characters`,
        );
      }
      const rule: RateLimitRule = {
        id: `${name}:${this.keyRing.identifier('rate-limit subject', subject, 22)}`,
        intervalMs: compiled.intervalMs,
        toleranceMs: compiled.toleranceMs,
      };
      return { compiled, rule };
    });
    const result = await this.store.rateLimitCheck(checked.map((entry) => entry.rule));
    const decisions = checked.map(({ compiled }, i): RateLimitDecision => {
      const state = result.states[i] ?? { remaining: 0, resetMs: 0, retryAfterMs: 0 };
      return {
        allowed: result.admitted,
        policy: compiled.name,
        limit: compiled.policy.limit + compiled.policy.burst,
        remaining: state.remaining,
        resetMs: state.resetMs,
        retryAfterMs: result.admitted ? 0 : state.retryAfterMs,
      };
    });
    const [first, ...rest] = decisions;
    if (!first) throw new Error('no decision');
    return rest.reduce(
      (deciding, candidate) => (moreRestrictive(candidate, deciding) ? candidate : deciding),
      first,
    );
  }

  /** The response headers for a decision of this limiter (see `rateLimitHeaders`). */
  headers(decision: RateLimitDecision): Record<string, string> {
    return rateLimitHeaders(decision, this.policies.get(decision.policy)?.policy.periodMs);
  }
}

function moreRestrictive(a: RateLimitDecision, b: RateLimitDecision): boolean {
  if (a.retryAfterMs !== b.retryAfterMs) return a.retryAfterMs > b.retryAfterMs;
  if (a.remaining !== b.remaining) return a.remaining < b.remaining;
  return a.resetMs > b.resetMs;
}

/**
 * Response headers for a decision: `X-RateLimit-Limit` (limit + burst), `X-RateLimit-Remaining`
 * (requests that may still come at once), `X-RateLimit-Reset` (seconds until the allowance is
 * full again), the IETF draft's `RateLimit-Policy` and `RateLimit`, and `Retry-After` (seconds)
 * on a refusal. Seconds are rounded up, so a client that waits them is admitted.
 */
export function rateLimitHeaders(decision: RateLimitDecision, periodMs?: number): Record<string, string> {
  const resetSeconds = Math.ceil(decision.resetMs / 1000);
  const headers: Record<string, string> = {
    'X-RateLimit-Limit': String(decision.limit),
    'X-RateLimit-Remaining': String(decision.remaining),
    'X-RateLimit-Reset': String(resetSeconds),
    RateLimit: `"${decision.policy}";r=${String(decision.remaining)};t=${String(resetSeconds)}`,
  };
  if (periodMs !== undefined) {
    headers['RateLimit-Policy'] =
      `"${decision.policy}";q=${String(decision.limit)};w=${String(Math.ceil(periodMs / 1000))}`;
  }
  if (!decision.allowed)
    headers['Retry-After'] = String(Math.max(1, Math.ceil(decision.retryAfterMs / 1000)));
  return headers;
}
