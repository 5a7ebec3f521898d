/**
 * The rate limits' part of the store (see ./store.ts): GCRA buckets checked atomically, used by
 * packages/gatehouse/src/rate-limit/rate-limits.ts.
 */

/** One GCRA bucket to check: its key id, and the policy in GCRA terms (integer ms). */
export interface RateLimitRule {
  /** `<policy>:<subject HMAC>`; all rate-limit keys share one hash tag so any set checks atomically. */
  readonly id: string;
  /** period / limit. */
  readonly intervalMs: number;
  /** (limit + burst - 1) * interval. */
  readonly toleranceMs: number;
}

export interface RateLimitState {
  /** Requests that may still come at once. */
  readonly remaining: number;
  /** Until the bucket is full again. */
  readonly resetMs: number;
  /** Until this bucket admits a request (0 when it does now). */
  readonly retryAfterMs: number;
}

export interface RateLimitCheck {
  readonly admitted: boolean;
  readonly nowMs: number;
  readonly states: readonly RateLimitState[];
}

export interface RateLimitCheckOptions {
  /**
   * `false`: a dry run (RateLimits.peek): the same answer a charging check would give (states
   * included), and nothing charged, also when all rules admit. Default true.
   */
  readonly charge?: boolean;
}

export interface RateLimitStore {
  /** True while commands can be sent: a check is then worth sending. */
  isReady(): boolean;

  /**
   * GCRA over every rule at once on the store's clock: when all admit, all are charged (unless
   * `charge` is false); when one refuses, none is. States come in the order of the rules.
   */
  checkRateLimits(rules: readonly RateLimitRule[], options?: RateLimitCheckOptions): Promise<RateLimitCheck>;
}

/** Checks rate-limit rules (a programming error if wrong) before they reach a store. */
export function assertRateLimitRules(rules: readonly RateLimitRule[]): void {
  if (rules.length === 0) throw new TypeError('checkRateLimits needs at least one rule');
  for (const rule of rules) {
    if (
      !Number.isSafeInteger(rule.intervalMs) ||
      rule.intervalMs < 1 ||
      !Number.isSafeInteger(rule.toleranceMs) ||
      rule.toleranceMs < 0
    ) {
      throw new RangeError(
        `rate-limit rule ${rule.id}: intervalMs must be a positive integer and toleranceMs a non-negative one`,
      );
    }
  }
}

/**
 * A bucket's state from its TAT after the check, relative to now (`tatAfterMs` = TAT - now: the
 * charged TAT when admitted, also for a dry run, which does not keep it; the unchanged one when
 * refused). Both stores derive it here, so they answer alike, and a dry run answers as the
 * charging check would.
 */
export function rateLimitState(rule: RateLimitRule, admitted: boolean, tatAfterMs: number): RateLimitState {
  const ahead = Math.max(0, tatAfterMs);
  return {
    remaining: Math.max(0, Math.floor((rule.toleranceMs + rule.intervalMs - ahead) / rule.intervalMs)),
    resetMs: ahead,
    retryAfterMs: admitted ? 0 : Math.max(0, ahead - rule.toleranceMs),
  };
}
