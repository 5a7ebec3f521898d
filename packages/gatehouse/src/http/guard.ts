/**
 * Every HTTP-level security decision the framework adapters need, framework-neutral: which
 * session a request carries and how, whether it may proceed (session, roles, CSRF, rate limits,
 * nonces, locks), and the headers that go with the answer (session cookie, `Cache-Control`,
 * `Clear-Site-Data`, rate-limit headers). The adapters only translate requests and replies to
 * and from these calls; nothing in them decides.
 */
import type { IncomingMessage } from 'node:http';

import type { Csrf } from '../csrf/csrf.js';
import type { Locks } from '../locks/locks.js';
import type { Nonces } from '../nonces/nonces.js';
import type { RateLimitDecision, RateLimits } from '../rate-limit/rate-limits.js';
import type { Session, Sessions, SessionToken, SessionValidationResult } from '../sessions/sessions.js';
import type { SessionEndReason } from '../store/session-store.js';
import type { Duration } from '../util/duration.js';
import { BodyRequirements, type BodyRequirementsInput, type HeldRouteLock } from './body-requirements.js';
import { clientIp, resolveTrustProxy, type TrustedProxies, type TrustProxyOption } from './client-ip.js';
import { clearedSessionCookie, readCookie, sessionCookie, sessionCookieName } from './cookies.js';
import { refusal, type HttpRefusal } from './envelope.js';
import { RequestLimits, type RateLimitAnswer, type RateLimitSpec } from './request-limits.js';
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
  /**
   * Whose `X-Forwarded-For` entries are believed (see ./client-ip.ts): a number of proxies in
   * front of the service (`true` = 1, at most 99), or a list of proxy addresses and CIDR ranges
   * (`['10.0.0.0/8', '127.0.0.1', 'fd00::/8']`), believed only on connections from them; a
   * malformed entry is a TypeError naming it. Default none: the client IP is the socket's peer.
   */
  readonly trustProxy?: TrustProxyOption;
  /**
   * A configured rate-limit policy charged per client IP (an IPv6 client by its /64) for every
   * request without a live session (no credential, a malformed, unknown, ended or forged one)
   * to a route that needs a session (`session: 'required'` or `roles`): when it refuses, the
   * answer is 429 `RATE_LIMITED` instead of 401. A client IP it has refused is then answered 429
   * before its credential is even looked at, until the retry time: no store call, no
   * `authenticateBearer`, no session validation (no SQL query in durable mode). Requests
   * presenting a session this instance knows to be live are not slowed by it. Default none.
   */
  readonly anonymousPolicy?: string;
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
  /**
   * True when `admitBeforeRoute` left the presented credential unvalidated (its client IP was
   * refused by the anonymous limit a moment ago): the route's own `admit`, given this admission
   * as `previous`, authenticates the request and decides.
   */
  readonly deferred: boolean;
}

const UNAUTHENTICATED: Authentication = { session: null, via: null, endReason: null, presented: false };

/** The admission of a route with `authenticate: false`: nothing looked at, nothing required. */
const NOT_AUTHENTICATED: Admission = {
  authentication: UNAUTHENTICATED,
  headers: {},
  refusal: null,
  csrfChecked: false,
  deferred: false,
};

/** A rate-limit charge started before the session was validated (see HttpGuard.admit). */
interface EarlyRateLimitCharge {
  /** The user the presented session belonged to when this instance last validated it. */
  readonly userId: string;
  readonly decision: Promise<RateLimitDecision>;
}

export type { RateLimitAnswer, RateLimitSpec } from './request-limits.js';
export type { BodyRequirementsInput, HeldRouteLock } from './body-requirements.js';

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
  private readonly trustProxy: number | TrustedProxies;
  private readonly limits: RequestLimits;
  private readonly body: BodyRequirements;

  constructor(private readonly options: HttpGuardOptions) {
    this.secureCookies = options.secureCookies ?? true;
    this.trustProxy = resolveTrustProxy(options.trustProxy);
    this.limits = new RequestLimits(options.rateLimits, options.anonymousPolicy);
    this.body = new BodyRequirements(options.nonces, options.locks);
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
   * With an `anonymousPolicy`, a route that needs a session first asks (synchronously, without
   * a store call) whether that policy refused the client IP a moment ago, unless the request
   * presents a session this instance knows: if so, 429 at once, before the credential is looked
   * at. A request without a live session is then charged to it, and answered 429 instead of 401
   * when it refuses.
   *
   * `previous` is an earlier admission of the same request (Express: `authenticate()` before
   * `protect()`): its authentication is reused (unless it was deferred) and a CSRF check it ran is
   * not repeated. A store outage throws (answer 503 with `refusalForError`).
   */
  async admit(request: HttpRequestView, route: AdmissionRoute, previous?: Admission): Promise<Admission> {
    if (route.authenticate === false) return NOT_AUTHENTICATED;
    const needsSession = route.session === 'required' || route.roles !== undefined;
    let authentication: Authentication;
    let early: EarlyRateLimitCharge | undefined;
    if (previous && !previous.deferred) {
      authentication = previous.authentication;
    } else {
      const presented = this.presentedToken(request);
      const token = presented.token === undefined ? null : this.options.sessions.readToken(presented.token);
      const chargesEarly = token !== null && route.rateLimit !== undefined && route.roles === undefined;
      const guardsAnonymous = needsSession && this.limits.anonymousPolicy !== undefined;
      const owner =
        token !== null && (chargesEarly || guardsAnonymous)
          ? this.options.sessions.ownerOf(token)
          : undefined;
      if (guardsAnonymous && owner === undefined) {
        const refused = this.limits.recentAnonymousRefusal(this.clientIp(request));
        if (refused) return this.refusedBeforeValidation(presented, refused);
      }
      early = chargesEarly && owner !== undefined ? this.chargeEarly(request, route, owner) : undefined;
      authentication = await this.authenticatePresented(presented, token);
    }
    const csrf = route.csrf !== false && previous?.csrfChecked !== true;
    const checked = await this.checkRoute(request, authentication, route, csrf, early);
    return {
      authentication,
      headers: checked.headers,
      refusal: checked.refusal,
      csrfChecked: csrf || previous?.csrfChecked === true,
      deferred: false,
    };
  }

  /**
   * `admit` for a request whose route is not known yet (Express's `authenticate()`, mounted
   * before the routes): the session is attached when present and CSRF checked when `csrf` is
   * true, as for a route with an optional session. One difference: with an `anonymousPolicy`, a
   * credential presented from a client IP that policy refused a moment ago is not validated (a
   * session this instance knows excepted): the admission is `deferred`, without a session, and
   * the route's own `admit` (Express's `protect()`) given it as `previous` decides: 429 for a
   * route that needs a session, a validation for one that does not. A handler behind no
   * `protect()` sees such a request as anonymous until the retry time.
   */
  async admitBeforeRoute(request: HttpRequestView, options: { readonly csrf: boolean }): Promise<Admission> {
    if (this.limits.anonymousPolicy !== undefined) {
      const presented = this.presentedToken(request);
      if (presented.token !== undefined) {
        const token = this.options.sessions.readToken(presented.token);
        const owner = token === null ? undefined : this.options.sessions.ownerOf(token);
        if (owner === undefined && this.limits.recentAnonymousRefusal(this.clientIp(request))) {
          return {
            authentication: { session: null, via: null, endReason: null, presented: true },
            headers: {},
            refusal: null,
            csrfChecked: false,
            deferred: true,
          };
        }
      }
    }
    return this.admit(request, { csrf: options.csrf });
  }

  /** The 429 of a client IP the anonymous limit refused a moment ago: nothing validated. */
  private refusedBeforeValidation(
    presented: { token: string | undefined; via: 'bearer' | 'cookie' },
    refused: RateLimitAnswer,
  ): Admission {
    const wasPresented = presented.token !== undefined || presented.via === 'bearer';
    return {
      authentication: { session: null, via: null, endReason: null, presented: wasPresented },
      headers: refused.headers,
      refusal: refused.refusal,
      csrfChecked: false,
      deferred: false,
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
    userId: string,
  ): EarlyRateLimitCharge | undefined {
    if (!this.options.rateLimits || route.rateLimit === undefined) return undefined;
    let subjects: Record<string, string>;
    try {
      subjects = this.limits.subjects(this.clientIp(request), userId, route.rateLimit);
    } catch {
      return undefined; // A bad route spec is reported by checkRoute, as without this.
    }
    const decision = this.limits.check(subjects);
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
    if (denied) {
      // No live session for a route that needs one: the anonymous limit's charge, whose 429
      // comes before the 401.
      const anonymous = auth.session ? null : await this.limits.chargeAnonymous(this.clientIp(request));
      if (anonymous) Object.assign(headers, anonymous.headers);
      return { headers, refusal: anonymous?.refusal ?? denied };
    }
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
   * Charges the route's policies: per user when authenticated, else per client IP (an IPv6
   * client by its /64). Returns the headers to send either way, and a refusal (429
   * `RATE_LIMITED` with `Retry-After`, or 503 while Redis is down under a `closed` policy).
   */
  rateLimit(
    request: HttpRequestView,
    auth: Authentication,
    policies: RateLimitSpec,
  ): Promise<RateLimitAnswer> {
    return this.chargeRoute(request, auth, policies);
  }

  /** `rateLimit`, using the charge `admit` started early when it was for this user. */
  private async chargeRoute(
    request: HttpRequestView,
    auth: Authentication,
    policies: RateLimitSpec,
    early?: EarlyRateLimitCharge,
  ): Promise<RateLimitAnswer> {
    const userId = auth.session?.userId ?? null;
    // The early charge was made for exactly these subjects when it names the same user.
    const decision =
      early !== undefined && early.userId === userId
        ? await early.decision
        : await this.limits.check(this.limits.subjects(this.clientIp(request), userId, policies));
    return this.limits.answer(decision);
  }

  /**
   * Before checking a sign-in's password: whether `account`'s allowance of failures under
   * `policy` is spent (a dry run: nothing is charged; see RateLimits.peek). `account` is the
   * app's normalised account key (the email, say), charged as `account:<key>` and HMAC'd like
   * every subject, so an account that does not exist is counted exactly as one that does and the
   * answer never tells them apart. Returns the refusal (429 `RATE_LIMITED` with `Retry-After` and
   * the rate-limit headers, or 503 under a `closed` policy while Redis is down) or null, and the
   * headers. Answer the refusal whether the password would be right or not.
   */
  peekAccountLimit(policy: string, account: string): Promise<RateLimitAnswer> {
    return this.limits.peekAccount(policy, account);
  }

  /**
   * Counts a failed sign-in against `account` under `policy` (see peekAccountLimit): call it for
   * every failure, unknown accounts included. The refusal says the allowance was already spent
   * (a concurrent failure took the last of it); nothing was charged then.
   */
  chargeAccountFailure(policy: string, account: string): Promise<RateLimitAnswer> {
    return this.limits.chargeAccount(policy, account);
  }

  /**
   * The requirements that need the body, once it is parsed: the route's lock first, then its
   * nonce, so that a request refused for the lock keeps its nonce (see ./body-requirements.ts).
   */
  admitBody(
    requirements: BodyRequirementsInput,
  ): Promise<{ lock: HeldRouteLock | null; refusal: HttpRefusal | null }> {
    return this.body.admitBody(requirements);
  }

  /** Spends a single-use nonce for `purpose`: 409 `NONCE_INVALID` when missing, used, expired or foreign. */
  consumeNonce(purpose: string, nonce: unknown): Promise<HttpRefusal | null> {
    return this.body.consumeNonce(purpose, nonce);
  }

  /** Takes the route's lock, kept renewed until `release()`, or 409 `LOCKED` (see ./body-requirements.ts). */
  acquireLock(
    resource: string,
    options: { ttl?: Duration; wait?: Duration; maxHold?: Duration } = {},
  ): Promise<{ lock: HeldRouteLock; refusal: null } | { lock: null; refusal: HttpRefusal }> {
    return this.body.acquireLock(resource, options);
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

  /**
   * The client IP, the full address (sessions record it): the socket's peer, or the trusted
   * proxies' view of it (see ./client-ip.ts). Per-IP rate limits count it by its group
   * (ipRateLimitGroup: an IPv6 client by its /64).
   */
  clientIp(request: HttpRequestView): string {
    return clientIp(request.socketAddress, request.header('x-forwarded-for'), this.trustProxy);
  }
}
