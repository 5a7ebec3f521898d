/**
 * Every HTTP-level security decision the framework adapters need, framework-neutral: which
 * session a request carries and how, whether it may proceed (session, roles, CSRF, rate limits,
 * nonces, locks), and the headers that go with the answer (session cookie, `Cache-Control`,
 * `Clear-Site-Data`, rate-limit headers). The adapters only translate requests and replies to
 * and from these calls; nothing in them decides.
 */
import type { IncomingMessage } from 'node:http';

import type { Csrf } from '../csrf/csrf.js';
import type { Lock, Locks } from '../locks/locks.js';
import type { Nonces } from '../nonces/nonces.js';
import type { RateLimitDecision, RateLimits } from '../rate-limit/rate-limits.js';
import type { Session, Sessions, SessionToken, SessionValidationResult } from '../sessions/sessions.js';
import type { SessionEndReason } from '../store/session-store.js';
import { toMs, type Duration } from '../util/duration.js';
import { clientIp } from './client-ip.js';
import { clearedSessionCookie, readCookie, sessionCookie, sessionCookieName } from './cookies.js';
import { refusal, type HttpRefusal } from './envelope.js';
import {
  checkLock,
  checkNonce,
  checkRouteDefinition,
  type DefinitionContext,
  type LockDefinition,
} from './route-definition.js';

/** What the guard reads from a request. Header names are lower-case. */
export interface HttpRequestView {
  readonly method: string;
  header(name: string): string | undefined;
  /** The socket's peer address. */
  readonly socketAddress: string | undefined;
}

/** The view of a Node request (what Fastify's `request.raw` and Express's `req` are). */
export function nodeRequestView(message: IncomingMessage): HttpRequestView {
  return {
    method: message.method ?? 'GET',
    header: (name) => {
      const value = message.headers[name];
      return Array.isArray(value) ? value[0] : value;
    },
    socketAddress: message.socket.remoteAddress,
  };
}

export interface HttpGuardOptions {
  readonly sessions: Sessions;
  readonly csrf?: Csrf;
  readonly rateLimits?: RateLimits;
  readonly nonces?: Nonces;
  readonly locks?: Locks;
  /** `false` only for plain-HTTP development (cookie without `Secure` or `__Host-`). Default true. */
  readonly secureCookies?: boolean;
  /** Proxies in front of the service whose `X-Forwarded-For` entries are believed (`true` = 1). Default none. */
  readonly trustProxy?: number | boolean;
  /**
   * Bearer credentials other than session tokens, such as signed access tokens: return the
   * session the credential stands for (or null with the reason), or undefined when the bearer is
   * not such a credential, and it is then validated as a session token. Requests authenticated
   * this way have `via: 'access-token'`.
   */
  readonly authenticateBearer?: (token: string) => Promise<SessionValidationResult | undefined>;
}

/** How a request is authenticated. */
export interface Authentication {
  readonly session: Session | null;
  /**
   * Where the session came from: a session token as bearer, the session cookie, another bearer
   * credential accepted by `authenticateBearer`, or nowhere.
   */
  readonly via: 'bearer' | 'cookie' | 'access-token' | null;
  /** Why a presented token was not accepted, when the store knows (limit, timeout, ...). */
  readonly endReason: SessionEndReason | null;
  /** Whether the request presented a token at all. */
  readonly presented: boolean;
}

/** A route lock: the Lock (with its fencing token), renewed until released. */
export interface HeldRouteLock {
  readonly lock: Lock;
  /** Fires when the lock is lost while the handler runs. */
  readonly signal: AbortSignal;
  /** Stops renewing and frees the lock; false when it was already gone. */
  release(): Promise<boolean>;
}

/** Per-route requirements, as the adapters take them. */
export interface RouteRequirements {
  /** `required`: 401 without a valid session. Default: the session is attached when present. */
  readonly session?: 'required' | 'optional';
  /** The session must carry at least one of these roles (implies a required session). */
  readonly roles?: readonly string[];
  /** CSRF check of cookie-authenticated unsafe requests. Default true; set false only with a reason. */
  readonly csrf?: boolean;
  /**
   * Rate-limit policies for the route. A name alone is charged per user when the request is
   * authenticated, else per client IP; `{ auth: 'ip' }` charges per client IP always (sign-in,
   * sign-up and public routes: a caller must not get a fresh allowance by presenting another
   * session), `{ pdf: 'user' }` per user (per IP for anonymous requests).
   */
  readonly rateLimit?: RateLimitSpec;
}

/** A route's requirements as `admit` takes them: the adapters pass their route's requirements. */
export interface AdmissionRoute extends RouteRequirements {
  /**
   * `false`: the route never looks at credentials (health probes, public keys): no session
   * lookup, so a probe carrying a cookie neither costs a store call nor counts as the session's
   * activity, and no requirement is checked. Default true.
   */
  readonly authenticate?: false;
}

/** What `admit` decided for a request. */
export interface Admission {
  readonly authentication: Authentication;
  /** To send with the answer either way: `Cache-Control: no-store` when authenticated, rate-limit headers. */
  readonly headers: Readonly<Record<string, string>>;
  /** The first requirement the request fails, to answer instead of the handler; null to go on. */
  readonly refusal: HttpRefusal | null;
  /** Whether the CSRF check ran (a later `admit` of the same request does not repeat it). */
  readonly csrfChecked: boolean;
}

const UNAUTHENTICATED: Authentication = { session: null, via: null, endReason: null, presented: false };

/** A rate-limit charge started before the session was validated (see HttpGuard.admit). */
interface EarlyRateLimitCharge {
  /** The user the presented session belonged to when this instance last validated it. */
  readonly userId: string;
  readonly decision: Promise<RateLimitDecision>;
}

/** Policies and whom each is charged to (see RouteRequirements.rateLimit). */
export type RateLimitSpec = string | readonly string[] | Readonly<Record<string, 'user' | 'ip'>>;

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

const END_MESSAGES: Readonly<Record<SessionEndReason, string>> = {
  'evicted-limit': 'The session was ended for the session limit.',
  'expired-idle': 'The session timed out after inactivity.',
  'expired-absolute': 'The session reached its maximum lifetime.',
  revoked: 'The session was ended.',
  rotated: 'The session was replaced by a newer one.',
};

const CLEAR_SITE_DATA = '"cache", "cookies", "storage"';

export class HttpGuard {
  readonly secureCookies: boolean;
  private readonly trustProxy: number;

  constructor(private readonly options: HttpGuardOptions) {
    this.secureCookies = options.secureCookies ?? true;
    const trust = options.trustProxy ?? 0;
    this.trustProxy = trust === true ? 1 : trust === false ? 0 : trust;
    if (!Number.isSafeInteger(this.trustProxy) || this.trustProxy < 0 || this.trustProxy > 16) {
      throw new TypeError('trustProxy must be true, false or a number of proxies from 0 to 16');
    }
  }

  /**
   * Checks a route's requirements where the route is defined, against what this guard was given
   * (see ./route-definition.ts): throws a RouteDefinitionError naming `where` and the mistake.
   * `extraKeys` are the adapter's own requirement keys; `methods` the route's, when known.
   */
  checkDefinition(
    definition: unknown,
    where: string,
    options: { readonly extraKeys?: readonly string[]; readonly methods?: readonly string[] } = {},
  ): void {
    checkRouteDefinition(definition, where, this.definitionContext(), options);
  }

  /** Checks a nonce requirement where it is defined (see checkDefinition). */
  checkNonceDefinition(purpose: unknown, from: unknown, where: string): void {
    checkNonce(purpose, from, where, this.definitionContext());
  }

  /** Checks a lock requirement where it is defined (see checkDefinition). */
  checkLockDefinition(resource: unknown, lock: LockDefinition, where: string): void {
    checkLock(resource, lock, where, this.definitionContext());
  }

  private definitionContext(): DefinitionContext {
    const { csrf, rateLimits, nonces, locks } = this.options;
    return { csrf, rateLimits, nonces, locks };
  }

  /** The name of the session cookie (`__Host-gh_session` when secure). */
  get cookieName(): string {
    return sessionCookieName(this.secureCookies);
  }

  /**
   * The one call per request: which session the request carries, and whether it may proceed to
   * its handler under `route`'s requirements, in this order: session and roles (401, 403), rate
   * limits (429, charged only for requests that got that far), CSRF (403). The token is read and
   * hashed once. When the request presents a session this instance has validated before (its
   * user is known: see Sessions.ownerOf; a forged token never is) and the route charges rate
   * limits without a role requirement, the charge is sent together with the validation: one
   * round trip instead of two, one after the other. The charge counts only if the session
   * validates as that user's; a session that ended meanwhile has been charged once on this
   * instance, and is forgotten.
   *
   * `previous` is an earlier admission of the same request (Express: `authenticate()` before
   * `protect()`): its authentication is reused and a CSRF check it ran is not repeated. A store
   * outage throws (answer 503 with `refusalForError`).
   */
  async admit(request: HttpRequestView, route: AdmissionRoute, previous?: Admission): Promise<Admission> {
    if (route.authenticate === false) {
      return { authentication: UNAUTHENTICATED, headers: {}, refusal: null, csrfChecked: false };
    }
    let authentication: Authentication;
    let early: EarlyRateLimitCharge | undefined;
    if (previous) {
      authentication = previous.authentication;
    } else {
      const presented = this.presentedToken(request);
      const token = presented.token === undefined ? null : this.options.sessions.readToken(presented.token);
      early = token === null ? undefined : this.chargeEarly(request, route, token);
      authentication = await this.authenticatePresented(presented, token);
    }
    const csrf = route.csrf !== false && previous?.csrfChecked !== true;
    const checked = await this.checkRoute(request, authentication, route, csrf, early);
    return {
      authentication,
      headers: checked.headers,
      refusal: checked.refusal,
      csrfChecked: csrf || previous?.csrfChecked === true,
    };
  }

  /**
   * Finds the request's session (see `admit`, which also checks the route). An `Authorization`
   * header decides alone when present (a bearer request is never also cookie-authenticated, so
   * the CSRF exemption of bearers cannot be borrowed by a cookie); otherwise the session cookie.
   * A store outage throws (answer 503).
   */
  async authenticate(request: HttpRequestView): Promise<Authentication> {
    const presented = this.presentedToken(request);
    const token = presented.token === undefined ? null : this.options.sessions.readToken(presented.token);
    return this.authenticatePresented(presented, token);
  }

  private async authenticatePresented(
    presented: { token: string | undefined; via: 'bearer' | 'cookie' },
    sessionToken: SessionToken | null,
  ): Promise<Authentication> {
    const { token, via } = presented;
    // An Authorization header counts as presenting a credential, even an empty or malformed one.
    if (token === undefined)
      return { session: null, via: null, endReason: null, presented: via === 'bearer' };
    if (via === 'bearer' && this.options.authenticateBearer) {
      const other = await this.options.authenticateBearer(token);
      if (other !== undefined) {
        return other.session
          ? { session: other.session, via: 'access-token', endReason: null, presented: true }
          : { session: null, via: null, endReason: other.reason, presented: true };
      }
    }
    if (sessionToken === null) return { session: null, via: null, endReason: null, presented: true };
    const result = await this.options.sessions.validateWithReason(sessionToken);
    if (!result.session) return { session: null, via: null, endReason: result.reason, presented: true };
    return { session: result.session, via, endReason: null, presented: true };
  }

  /** The credential a request presents: the `Authorization` bearer if any, else the cookie. */
  private presentedToken(request: HttpRequestView): { token: string | undefined; via: 'bearer' | 'cookie' } {
    const authorization = request.header('authorization');
    const token =
      authorization !== undefined
        ? /^Bearer[ ]+(\S+)\s*$/i.exec(authorization)?.[1]
        : readCookie(request.header('cookie'), this.cookieName);
    return {
      token: token === '' ? undefined : token,
      via: authorization !== undefined ? 'bearer' : 'cookie',
    };
  }

  /** The route's rate-limit charge, started before validation when the session's user is known (see `admit`). */
  private chargeEarly(
    request: HttpRequestView,
    route: RouteRequirements,
    token: SessionToken,
  ): EarlyRateLimitCharge | undefined {
    const rateLimits = this.options.rateLimits;
    if (!rateLimits || route.rateLimit === undefined || route.roles !== undefined) return undefined;
    const userId = this.options.sessions.ownerOf(token);
    if (userId === undefined) return undefined;
    let subjects: Record<string, string>;
    try {
      subjects = this.rateLimitSubjects(request, userId, route.rateLimit);
    } catch {
      return undefined; // A bad route spec is reported by checkRoute, as without this.
    }
    const decision = rateLimits.check(subjects);
    // Awaited by checkRoute when used; a charge left unused must not be an unhandled rejection.
    decision.catch(() => undefined);
    return { userId, decision };
  }

  /** The route's checks that need no body, in `admit`'s order, for an authenticated request. */
  private async checkRoute(
    request: HttpRequestView,
    auth: Authentication,
    route: RouteRequirements,
    checkCsrf: boolean,
    early: EarlyRateLimitCharge | undefined,
  ): Promise<{ headers: Record<string, string>; refusal: HttpRefusal | null }> {
    const headers: Record<string, string> = auth.session ? this.authenticatedHeaders() : {};
    const denied =
      route.roles !== undefined
        ? this.requireRoles(auth, route.roles)
        : route.session === 'required'
          ? this.requireSession(auth)
          : null;
    if (denied) return { headers, refusal: denied };
    if (route.rateLimit !== undefined) {
      const limited = await this.chargeRoute(request, auth, route.rateLimit, early);
      Object.assign(headers, limited.headers);
      if (limited.refusal) return { headers, refusal: limited.refusal };
    }
    if (checkCsrf) {
      const forged = await this.checkCsrf(request, auth);
      if (forged) return { headers, refusal: forged };
    }
    return { headers, refusal: null };
  }

  /** 401 unless authenticated, saying why a presented session is gone when that is known. */
  requireSession(auth: Authentication): HttpRefusal | null {
    if (auth.session) return null;
    const message = auth.endReason ? END_MESSAGES[auth.endReason] : 'Sign in first.';
    return refusal('UNAUTHENTICATED', message);
  }

  /** 401 without a session; 403 unless the session has at least one of `roles`. */
  requireRoles(auth: Authentication, roles: readonly string[]): HttpRefusal | null {
    const missing = this.requireSession(auth);
    if (missing) return missing;
    if (roles.length === 0 || roles.some((role) => auth.session?.roles.includes(role) === true)) return null;
    return refusal('FORBIDDEN', 'You may not do this.');
  }

  /**
   * CSRF for cookie-authenticated unsafe requests: origin checks, then the `X-CSRF-Token`
   * header (see Csrf). Safe methods, bearer requests and anonymous requests pass: there is no
   * ambient credential to ride on.
   */
  async checkCsrf(request: HttpRequestView, auth: Authentication): Promise<HttpRefusal | null> {
    if (SAFE_METHODS.has(request.method.toUpperCase())) return null;
    if (auth.via !== 'cookie' || !auth.session) return null;
    const csrf = this.options.csrf;
    if (!csrf) throw new TypeError('CSRF checks need a Csrf instance in the gatehouse options');
    const result = await csrf.verify(auth.session, request.header('x-csrf-token'), {
      method: request.method,
      secFetchSite: request.header('sec-fetch-site'),
      origin: request.header('origin'),
      authorization: request.header('authorization'),
      host: request.header('host'),
    });
    return result.ok ? null : refusal('CSRF_INVALID', 'The request failed the CSRF check.');
  }

  /**
   * Charges the route's policies: per user when authenticated, else per client IP. Returns the
   * headers to send either way, and a refusal (429 `RATE_LIMITED` with `Retry-After`, or 503
   * while Redis is down under a `closed` policy).
   */
  rateLimit(
    request: HttpRequestView,
    auth: Authentication,
    policies: RateLimitSpec,
  ): Promise<{ headers: Record<string, string>; refusal: HttpRefusal | null }> {
    return this.chargeRoute(request, auth, policies);
  }

  /** `rateLimit`, using the charge `admit` started early when it was for this user. */
  private async chargeRoute(
    request: HttpRequestView,
    auth: Authentication,
    policies: RateLimitSpec,
    early?: EarlyRateLimitCharge,
  ): Promise<{ headers: Record<string, string>; refusal: HttpRefusal | null }> {
    const rateLimits = this.options.rateLimits;
    if (!rateLimits) throw new TypeError('rate limits need a RateLimits instance in the gatehouse options');
    const userId = auth.session?.userId ?? null;
    // The early charge was made for exactly these subjects when it names the same user.
    const decision =
      early !== undefined && early.userId === userId
        ? await early.decision
        : await rateLimits.check(this.rateLimitSubjects(request, userId, policies));
    const headers = rateLimits.headers(decision);
    if (decision.allowed) return { headers, refusal: null };
    if (decision.reason === 'store-unavailable') {
      return {
        headers,
        refusal: refusal(
          'SERVICE_UNAVAILABLE',
          'Rate limits cannot be checked right now; try again shortly.',
          {
            'Retry-After': headers['Retry-After'] ?? '1',
          },
        ),
      };
    }
    return { headers, refusal: refusal('RATE_LIMITED', 'Too many requests; try again later.') };
  }

  /** The subjects a route's policies are charged to: `userId` when authenticated, else the client IP. */
  private rateLimitSubjects(
    request: HttpRequestView,
    userId: string | null,
    policies: RateLimitSpec,
  ): Record<string, string> {
    const byIp = `ip:${this.clientIp(request)}`;
    const byUser = userId === null ? byIp : `user:${userId}`;
    // Typed as strings: plain-JavaScript callers may pass anything, and are told so.
    const entries: [string, string][] =
      typeof policies === 'string'
        ? [[policies, 'user']]
        : isPolicyList(policies)
          ? policies.map((name) => [name, 'user'])
          : Object.entries(policies);
    const subjects = entries.map(([name, by]): [string, string] => {
      if (by !== 'ip' && by !== 'user') throw new TypeError(`rate limit ${name}: charge 'user' or 'ip'`);
      return [name, by === 'ip' ? byIp : byUser];
    });
    return Object.fromEntries(subjects);
  }

  /**
   * The requirements that need the body, once it is parsed: the route's lock first, then its
   * nonce, so that a request refused for the lock keeps its nonce. Returns the lock taken (to
   * release once the handler has answered: also when the nonce was then refused) and the first
   * refusal.
   */
  async admitBody(requirements: {
    readonly lock?: {
      readonly resource: string;
      readonly ttl?: Duration;
      readonly wait?: Duration;
      readonly maxHold?: Duration;
    };
    readonly nonce?: { readonly purpose: string; readonly value: unknown };
  }): Promise<{ lock: HeldRouteLock | null; refusal: HttpRefusal | null }> {
    let lock: HeldRouteLock | null = null;
    if (requirements.lock) {
      const { resource, ...durations } = requirements.lock;
      const taken = await this.acquireLock(resource, durations);
      if (taken.refusal) return { lock: null, refusal: taken.refusal };
      lock = taken.lock;
    }
    if (!requirements.nonce) return { lock, refusal: null };
    try {
      return { lock, refusal: await this.consumeNonce(requirements.nonce.purpose, requirements.nonce.value) };
    } catch (error) {
      // The handler will not run: the lock goes back now, not when its renewals run out.
      await lock?.release().catch(() => undefined);
      throw error;
    }
  }

  /** Spends a single-use nonce for `purpose`: 409 `NONCE_INVALID` when missing, used, expired or foreign. */
  async consumeNonce(purpose: string, nonce: unknown): Promise<HttpRefusal | null> {
    const nonces = this.options.nonces;
    if (!nonces) throw new TypeError('nonces need a Nonces instance in the gatehouse options');
    const result = await nonces.consume(purpose, nonce);
    return result.ok
      ? null
      : refusal('NONCE_INVALID', 'The form token is missing, used, expired or not for this form.');
  }

  /**
   * Takes the route's lock, kept renewed (a third of its TTL) until `release()`, or 409 `LOCKED`
   * with `Retry-After` while another request holds it. The adapters release it once the handler
   * has answered; `signal` fires if it is lost meanwhile (renewal refused, Redis gone past the TTL,
   * or the hold limit).
   */
  async acquireLock(
    resource: string,
    options: { ttl?: Duration; wait?: Duration; maxHold?: Duration } = {},
  ): Promise<{ lock: HeldRouteLock; refusal: null } | { lock: null; refusal: HttpRefusal }> {
    const locks = this.options.locks;
    if (!locks) throw new TypeError('locks need a Locks instance in the gatehouse options');
    const result = await locks.acquire(resource, {
      ...(options.ttl === undefined ? {} : { ttl: toMs('lock ttl', options.ttl) }),
      ...(options.wait === undefined ? {} : { wait: options.wait }),
    });
    if (result.acquired) {
      const renewal = locks.keepRenewed(
        result,
        options.maxHold === undefined ? {} : { maxHold: options.maxHold },
      );
      const release = async () => {
        await renewal.stop();
        return result.release();
      };
      return { lock: { lock: result, signal: renewal.signal, release }, refusal: null };
    }
    return {
      lock: null,
      refusal: refusal('LOCKED', 'Another request is working on this; try again later.', {
        'Retry-After': String(Math.max(1, Math.ceil(result.retryAfterMs / 1000))),
      }),
    };
  }

  /** Headers for every response to an authenticated request: nothing personal in shared caches. */
  authenticatedHeaders(): Record<string, string> {
    return { 'Cache-Control': 'no-store' };
  }

  /** `Set-Cookie` for a new session (after sign-in or rotation). */
  sessionCookie(token: string, session: Session): string {
    return sessionCookie(token, session.absoluteExpiresAtMs, this.secureCookies);
  }

  /**
   * Ends the request's session everywhere and returns the headers that clear it in the browser:
   * the cookie (for cookie sessions) and `Clear-Site-Data`.
   */
  async signOut(auth: Authentication): Promise<Record<string, string>> {
    if (auth.session) await this.options.sessions.revoke(auth.session.handle, { cause: 'signout' });
    return {
      'Set-Cookie': clearedSessionCookie(this.secureCookies),
      'Clear-Site-Data': CLEAR_SITE_DATA,
      'Cache-Control': 'no-store',
    };
  }

  /** The client IP: the socket's peer, or the trusted proxies' view of it (see clientIp). */
  clientIp(request: HttpRequestView): string {
    return clientIp(request.socketAddress, request.header('x-forwarded-for'), this.trustProxy);
  }
}

function isPolicyList(
  policies: readonly string[] | Readonly<Record<string, 'user' | 'ip'>>,
): policies is readonly string[] {
  return Array.isArray(policies);
}
