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
 * policies can be checked atomically: rate limiting then runs on one shard. The Redis store sends
 * the checks of one turn of the event loop in one script call (see packages/gatehouse/src/store/redis/rate-limits.ts).
 *
 * What this stops: one client (or one user, or one IP) exhausting a route across all instances.
 * What it does not stop: a distributed attack spread over many subjects below each limit.
 */
import type { KeyRing } from '../crypto/keyring.js';
import { StoreUnavailableError } from '../errors.js';
import { MemoryStore } from '../store/memory/store.js';
import type { RateLimitRule, RateLimitState, RateLimitStore } from '../store/rate-limit-store.js';
import { parseRateLimitPolicy, RATE_LIMIT_POLICY_EXPECTED, type RateLimitPolicy } from './policy.js';

export interface RateLimitDecision {
  readonly allowed: boolean;
  /** Why a refusal: the limit itself, or the store being down under a `closed` policy. */
  readonly reason: 'limited' | 'store-unavailable' | null;
  /** True when decided by the per-process fallback limiter because the store was down. */
  readonly degraded: boolean;
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

/**
 * What a policy does while the store is down, chosen per policy: `closed` refuses (reason
 * `store-unavailable`), `open` admits through a per-process limiter sized at the policy divided
 * by `expectedInstances` and marks the decision degraded. Nothing ever admits everything.
 */
export type StoreDownMode = 'open' | 'closed';

export interface PolicySpec {
  readonly policy: string | RateLimitPolicy;
  readonly whenStoreDown: StoreDownMode;
}

export interface RateLimitsOptions {
  /** Named policies: `{ auth: '5/1m+2', api: { policy: '100/1m+10', whenStoreDown: 'open' } }`; a bare policy is `closed`. */
  readonly policies: Readonly<Record<string, string | RateLimitPolicy | PolicySpec>>;
  /** Instances sharing the limits, to size the per-process fallback of `open` policies. Default 1. */
  readonly expectedInstances?: number;
  /** Refused subjects remembered in this process until their retry time. Default 10,000. */
  readonly blockedCacheSize?: number;
}

interface CompiledPolicy {
  readonly name: string;
  readonly policy: RateLimitPolicy;
  readonly intervalMs: number;
  readonly toleranceMs: number;
  readonly whenStoreDown: StoreDownMode;
  /** The same policy for one of `expectedInstances` processes: each admits its share. */
  readonly fallbackIntervalMs: number;
  readonly fallbackToleranceMs: number;
}

interface Blocked {
  readonly decision: RateLimitDecision;
  readonly untilMs: number;
}

const STORE_DOWN_MODES: ReadonlySet<string> = new Set<StoreDownMode>(['open', 'closed']);

/** While the store is down, a closed policy asks clients to come back after this long. */
const STORE_DOWN_RETRY_MS = 1000;

/**
 * Subjects whose HMAC is remembered, so a repeat visitor costs no HMAC (the larger part of a
 * check's own work). Process memory only: Redis and logs still see only the HMAC.
 */
const SUBJECT_CACHE_SIZE = 10_000;

const POLICY_NAME = /^[A-Za-z0-9_-]{1,32}$/;
const MAX_SUBJECT_LENGTH = 512;

function compile(
  name: string,
  spec: string | RateLimitPolicy | PolicySpec,
  expectedInstances: number,
): CompiledPolicy {
  if (!POLICY_NAME.test(name))
    throw new TypeError(`policy name "${name}" must be 1 to 32 of A-Z a-z 0-9 _ -`);
  const full: PolicySpec =
    typeof spec === 'object' && 'whenStoreDown' in spec ? spec : { policy: spec, whenStoreDown: 'closed' };
  // Checked at run time too: callers in plain JavaScript could pass anything.
  if (!STORE_DOWN_MODES.has(full.whenStoreDown)) {
    throw new TypeError(`policy ${name}: whenStoreDown must be 'open' or 'closed'`);
  }
  const policy = typeof full.policy === 'string' ? parseRateLimitPolicy(full.policy) : full.policy;
  if (
    !policy ||
    !Number.isSafeInteger(policy.limit) ||
    policy.limit < 1 ||
    policy.burst < 0 ||
    policy.periodMs < 1
  ) {
    throw new TypeError(`policy ${name}: expected ${RATE_LIMIT_POLICY_EXPECTED}`);
  }
  // Integer milliseconds; rounding the interval up keeps the limit exact or slightly stricter.
  const intervalMs = Math.ceil(policy.periodMs / policy.limit);
  const capacity = policy.limit + policy.burst;
  const fallbackIntervalMs = intervalMs * expectedInstances;
  const fallbackCapacity = Math.max(1, Math.floor(capacity / expectedInstances));
  return {
    name,
    policy,
    intervalMs,
    toleranceMs: (capacity - 1) * intervalMs,
    whenStoreDown: full.whenStoreDown,
    fallbackIntervalMs,
    fallbackToleranceMs: (fallbackCapacity - 1) * fallbackIntervalMs,
  };
}

export class RateLimits {
  private readonly policies: ReadonlyMap<string, CompiledPolicy>;
  private readonly blocked = new Map<string, Blocked>();
  private readonly blockedCacheSize: number;
  private readonly subjectIds = new Map<string, string>();
  /** The per-process limiter behind `open` policies while the store is down. */
  private readonly fallback = new MemoryStore({ keyPrefix: 'local' });
  private storeDown = false;

  constructor(
    private readonly store: RateLimitStore,
    private readonly keyRing: KeyRing,
    options: RateLimitsOptions,
  ) {
    const instances = options.expectedInstances ?? 1;
    if (!Number.isSafeInteger(instances) || instances < 1)
      throw new TypeError('expectedInstances must be at least 1');
    this.policies = new Map(
      Object.entries(options.policies).map(([name, spec]) => [name, compile(name, spec, instances)]),
    );
    this.blockedCacheSize = options.blockedCacheSize ?? 10_000;
  }

  /** The configured policy names: a route naming any other is refused when it is defined. */
  get policyNames(): readonly string[] {
    return [...this.policies.keys()];
  }

  /**
   * True while the last store call failed and the store has not reconnected since: decisions come
   * from the fallback or refuse. For /health; the next check after a reconnect asks the store.
   */
  get degraded(): boolean {
    return this.storeDown && !this.store.isReady();
  }

  /**
   * Checks one request against several policies at once, each with its subject, e.g.
   * `{ api: userId, ip: clientIp }`. Admitted only when every policy admits it, and then charged
   * to every policy; refused without charging any. A refusal is a result, not an error; the store
   * being down is StoreUnavailableError.
   */
  check(subjects: Readonly<Record<string, string>>): Promise<RateLimitDecision> {
    return this.decideFor(subjects, true);
  }

  /**
   * The decision `check` would give, charging nothing (a dry run): to ask whether an allowance
   * is spent before doing work that is charged only when it fails, such as a password check
   * (HttpGuard.peekAccountLimit). A refusal is remembered like one of `check`, so repeated
   * peeks and checks of a refused subject cost no store call until its retry time. While the
   * store is down it answers as `check` would then: `closed` refuses, `open` asks the
   * per-process limiter, again without charging it.
   */
  peek(subjects: Readonly<Record<string, string>>): Promise<RateLimitDecision> {
    return this.decideFor(subjects, false);
  }

  /**
   * The refusal this process remembers for `subject` under `policy` (see `check`: a refused
   * subject is answered from memory until its retry time), with the time left; null when there
   * is none. Synchronous and without a store call: the guard asks it before it validates a
   * credential, so a client refused a moment ago costs no validation at all (HttpGuard's
   * `anonymousPolicy`).
   */
  recentRefusal(policy: string, subject: string): RateLimitDecision | null {
    this.compiledPolicy(policy, subject);
    return this.blockedDecision(`${policy}:${this.subjectId(subject)}`, Date.now());
  }

  private async decideFor(
    subjects: Readonly<Record<string, string>>,
    charge: boolean,
  ): Promise<RateLimitDecision> {
    const entries = Object.entries(subjects);
    if (entries.length === 0) {
      throw new TypeError(`${charge ? 'check' : 'peek'} needs at least one policy and subject`);
    }
    const checked = entries.map(([name, subject]) => {
      const compiled = this.compiledPolicy(name, subject);
      const rule: RateLimitRule = {
        id: `${name}:${this.subjectId(subject)}`,
        intervalMs: compiled.intervalMs,
        toleranceMs: compiled.toleranceMs,
      };
      return { compiled, rule };
    });
    // A subject refused a moment ago is answered from memory until its retry time: repeat
    // offenders cost no store call (refusals charge nothing, so the answer is the same).
    const now = Date.now();
    for (const { rule } of checked) {
      const blocked = this.blockedDecision(rule.id, now);
      if (blocked) return blocked;
    }
    const policies = checked.map((entry) => entry.compiled);
    const rules = checked.map((entry) => entry.rule);
    let result;
    try {
      result = await this.store.checkRateLimits(rules, { charge });
      this.storeDown = false;
    } catch (error) {
      if (!(error instanceof StoreUnavailableError)) throw error;
      this.storeDown = true;
      return this.whileStoreDown(policies, rules, charge);
    }
    const decision = this.decide(policies, result.admitted, result.states, false);
    if (!decision.allowed) {
      const refusing = checked.find((entry) => entry.compiled.name === decision.policy);
      if (refusing) this.block(refusing.rule.id, decision, now);
    }
    return decision;
  }

  /** The policy named `name`, with `subject` checked: unknown names and bad subjects are programming errors. */
  private compiledPolicy(name: string, subject: unknown): CompiledPolicy {
    const compiled = this.policies.get(name);
    if (!compiled) throw new TypeError(`unknown rate-limit policy "${name}"`);
    if (typeof subject !== 'string' || subject === '' || subject.length > MAX_SUBJECT_LENGTH) {
      throw new TypeError(
        `the subject for policy "${name}" must be 1 to ${String(MAX_SUBJECT_LENGTH)} characters`,
      );
    }
    return compiled;
  }

  /** The remembered refusal of a rule, with the time left, until its retry time; then forgotten. */
  private blockedDecision(id: string, now: number): RateLimitDecision | null {
    const blocked = this.blocked.get(id);
    if (blocked === undefined) return null;
    if (blocked.untilMs > now) return { ...blocked.decision, retryAfterMs: blocked.untilMs - now };
    this.blocked.delete(id);
    return null;
  }

  private decide(
    policies: readonly CompiledPolicy[],
    admitted: boolean,
    states: readonly RateLimitState[],
    degraded: boolean,
  ): RateLimitDecision {
    const decisions = policies.map((compiled, i): RateLimitDecision => {
      const state = states[i] ?? { remaining: 0, resetMs: 0, retryAfterMs: 0 };
      return {
        allowed: admitted,
        reason: admitted ? null : 'limited',
        degraded,
        policy: compiled.name,
        limit: compiled.policy.limit + compiled.policy.burst,
        remaining: state.remaining,
        resetMs: state.resetMs,
        retryAfterMs: admitted ? 0 : state.retryAfterMs,
      };
    });
    const [first, ...rest] = decisions;
    if (!first) throw new Error('no decision');
    return rest.reduce(
      (deciding, candidate) => (moreRestrictive(candidate, deciding) ? candidate : deciding),
      first,
    );
  }

  /** Closed policies refuse; when all are open, the per-process limiter decides. */
  private async whileStoreDown(
    policies: readonly CompiledPolicy[],
    rules: readonly RateLimitRule[],
    charge: boolean,
  ): Promise<RateLimitDecision> {
    const closed = policies.find((compiled) => compiled.whenStoreDown === 'closed');
    if (closed) {
      return {
        allowed: false,
        reason: 'store-unavailable',
        degraded: true,
        policy: closed.name,
        limit: closed.policy.limit + closed.policy.burst,
        remaining: 0,
        resetMs: STORE_DOWN_RETRY_MS,
        retryAfterMs: STORE_DOWN_RETRY_MS,
      };
    }
    const local = await this.fallback.checkRateLimits(
      rules.map((rule, i) => ({
        id: rule.id,
        intervalMs: policies[i]?.fallbackIntervalMs ?? rule.intervalMs,
        toleranceMs: policies[i]?.fallbackToleranceMs ?? rule.toleranceMs,
      })),
      { charge },
    );
    return this.decide(policies, local.admitted, local.states, true);
  }

  /** The subject's HMAC, as it appears in keys. */
  private subjectId(subject: string): string {
    let id = this.subjectIds.get(subject);
    if (id === undefined) {
      id = this.keyRing.identifier('rate-limit subject', subject, 22);
      if (this.subjectIds.size >= SUBJECT_CACHE_SIZE) {
        const oldest = this.subjectIds.keys().next();
        if (!oldest.done) this.subjectIds.delete(oldest.value);
      }
      this.subjectIds.set(subject, id);
    }
    return id;
  }

  private block(id: string, decision: RateLimitDecision, now: number): void {
    if (decision.retryAfterMs <= 0) return;
    if (this.blocked.size >= this.blockedCacheSize && !this.blocked.has(id)) {
      const oldest = this.blocked.keys().next();
      if (!oldest.done) this.blocked.delete(oldest.value);
    }
    this.blocked.set(id, { decision, untilMs: now + decision.retryAfterMs });
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
