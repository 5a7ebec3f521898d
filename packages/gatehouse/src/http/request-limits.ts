/**
 * The guard's rate limits (HttpGuard, packages/gatehouse/src/http/guard.ts): whom a request's
 * policies are charged to, the answer to a decision (headers, 429, or 503 while the store is down
 * under a `closed` policy), the pre-authentication limit (`anonymousPolicy`) and the per-account
 * limit of failed sign-ins.
 *
 * Subjects are namespaced, so that one policy can never mix them up: `ip:<address group>` (an
 * IPv6 client by its /64: see ipRateLimitGroup), `user:<user id>`, `account:<account key>`. The
 * limiter HMACs every subject before it becomes part of a key.
 */
import type { RateLimitDecision, RateLimits } from '../rate-limit/rate-limits.js';
import { refusal, type HttpRefusal } from './envelope.js';
import { ipRateLimitGroup } from './ip-address.js';

/** Policies and whom each is charged to (see RouteRequirements.rateLimit in ./guard.ts). */
export type RateLimitSpec = string | readonly string[] | Readonly<Record<string, 'user' | 'ip'>>;

/** What a rate-limit decision means for the answer: headers to send either way, and a refusal or null. */
export interface RateLimitAnswer {
  readonly headers: Record<string, string>;
  /** 429 `RATE_LIMITED`, or 503 `SERVICE_UNAVAILABLE`, each with `Retry-After` and the rate-limit headers. */
  readonly refusal: HttpRefusal | null;
}

export class RequestLimits {
  constructor(
    private readonly rateLimits: RateLimits | undefined,
    /** The policy charged per client IP for requests without a live session to routes that need one. */
    readonly anonymousPolicy: string | undefined,
  ) {
    if (anonymousPolicy === undefined) return;
    if (!rateLimits)
      throw new TypeError('anonymousPolicy needs a RateLimits instance in the gatehouse options');
    if (!rateLimits.policyNames.includes(anonymousPolicy)) {
      throw new TypeError(
        `anonymousPolicy names the policy ${JSON.stringify(anonymousPolicy)}, which is not configured (configured: ${rateLimits.policyNames.join(', ') || 'none'})`,
      );
    }
  }

  private limiter(): RateLimits {
    if (!this.rateLimits)
      throw new TypeError('rate limits need a RateLimits instance in the gatehouse options');
    return this.rateLimits;
  }

  /** The subjects a route's policies are charged to: `userId` when authenticated, else the client IP. */
  subjects(clientIp: string, userId: string | null, policies: RateLimitSpec): Record<string, string> {
    // Typed as strings: plain-JavaScript callers may pass anything, and are told so.
    const entries: [string, string][] =
      typeof policies === 'string'
        ? [[policies, 'user']]
        : isPolicyList(policies)
          ? policies.map((name) => [name, 'user'])
          : Object.entries(policies);
    const subjects: [string, string][] = [];
    // The IP's group is worked out only when a policy is charged to it: per-user charges, the
    // common case, need none.
    let byIp: string | undefined;
    for (const [name, by] of entries) {
      if (by !== 'ip' && by !== 'user') throw new TypeError(`rate limit ${name}: charge 'user' or 'ip'`);
      subjects.push([
        name,
        by === 'user' && userId !== null ? `user:${userId}` : (byIp ??= ipSubject(clientIp)),
      ]);
    }
    return Object.fromEntries(subjects);
  }

  /** Charges `subjects` (see RateLimits.check). */
  check(subjects: Readonly<Record<string, string>>): Promise<RateLimitDecision> {
    return this.limiter().check(subjects);
  }

  /** The answer to a decision of this guard's limiter. */
  answer(decision: RateLimitDecision): RateLimitAnswer {
    const headers = this.limiter().headers(decision);
    if (decision.allowed) return { headers, refusal: null };
    if (decision.reason === 'store-unavailable') {
      return {
        headers,
        refusal: refusal(
          'SERVICE_UNAVAILABLE',
          'Rate limits cannot be checked right now; try again shortly.',
          {
            ...headers,
            'Retry-After': headers['Retry-After'] ?? '1',
          },
        ),
      };
    }
    return { headers, refusal: refusal('RATE_LIMITED', 'Too many requests; try again later.', headers) };
  }

  /**
   * The anonymous limit's remembered refusal of this client IP (see RateLimits.recentRefusal):
   * synchronous, no store call. Null without an anonymous policy, or when none is remembered.
   */
  recentAnonymousRefusal(clientIp: string): RateLimitAnswer | null {
    if (this.anonymousPolicy === undefined) return null;
    const refused = this.limiter().recentRefusal(this.anonymousPolicy, ipSubject(clientIp));
    return refused ? this.answer(refused) : null;
  }

  /** Charges a request without a live session to the anonymous policy, per client IP. */
  async chargeAnonymous(clientIp: string): Promise<RateLimitAnswer | null> {
    if (this.anonymousPolicy === undefined) return null;
    return this.answer(await this.limiter().check({ [this.anonymousPolicy]: ipSubject(clientIp) }));
  }

  /** See HttpGuard.peekAccountLimit. */
  async peekAccount(policy: string, account: string): Promise<RateLimitAnswer> {
    return this.answer(await this.limiter().peek({ [policy]: accountSubject(account) }));
  }

  /** See HttpGuard.chargeAccountFailure. */
  async chargeAccount(policy: string, account: string): Promise<RateLimitAnswer> {
    return this.answer(await this.limiter().check({ [policy]: accountSubject(account) }));
  }
}

function ipSubject(clientIp: string): string {
  return `ip:${ipRateLimitGroup(clientIp)}`;
}

function accountSubject(account: string): string {
  // Checked at run time too: callers in plain JavaScript could pass anything.
  if (typeof account !== 'string' || account === '') {
    throw new TypeError('the account key must be a non-empty string (e.g. the normalised email)');
  }
  return `account:${account}`;
}

function isPolicyList(
  policies: readonly string[] | Readonly<Record<string, 'user' | 'ip'>>,
): policies is readonly string[] {
  return Array.isArray(policies);
}
