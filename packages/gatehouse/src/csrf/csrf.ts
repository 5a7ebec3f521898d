/**
 * CSRF protection in three layers, for cookie-authenticated requests with unsafe methods.
 *
 * 1. Fetch Metadata: `Sec-Fetch-Site` must be `same-origin`; `cross-site` and `none` are
 *    refused, `same-site` too unless allowed (a sibling subdomain is not the service).
 * 2. Where browsers send no Fetch Metadata: `Origin` must be the service's own origin or a
 *    trusted one; `Origin: null` counts as cross-origin; neither header is refused (a `Referer`
 *    alone is not enough).
 * 3. A synchronizer token per session (`X-CSRF-Token`): 128 random bits and the time it was
 *    issued, MAC'd with the session's handle under the key ring, so it verifies with the key
 *    alone (also while Redis is down) and dies with the session (a rotated session has a new
 *    handle); its hash is also recorded in the store for 4 h so it can be revoked.
 *
 * What this stops: a page on another site making the user's browser send a state-changing
 * request with the user's cookies (layers 1 and 2 refuse it before any token is looked at, and
 * layer 3 needs a token the attacker cannot read), a token stolen from one session being used
 * with another, and a token outliving its session or its 4 hours.
 * What it does not stop: script running on the service's own origin (XSS can read the token and
 * send same-origin requests), or attacks on safe methods (GET must not change state). Requests
 * authenticated by an `Authorization: Bearer` header carry no ambient credentials and are exempt.
 */
import type { KeyRing } from '../crypto/keyring.js';
import { StoreUnavailableError } from '../errors.js';
import type { MarkerStore } from '../store/marker-store.js';
import { toMs, type Duration } from '../util/duration.js';
import { decodeFixed, randomToken, readUint48, recordId, writeUint48 } from '../util/tokens.js';

export type CsrfRefusal =
  | 'cross-site'
  | 'same-site'
  | 'null-origin'
  | 'foreign-origin'
  | 'missing-origin'
  | 'missing-token'
  | 'malformed-token'
  | 'invalid-token'
  | 'expired-token'
  | 'revoked-token';

export type CsrfResult =
  | { readonly ok: true; readonly exempt?: 'safe-method' | 'bearer' }
  | { readonly ok: false; readonly reason: CsrfRefusal };

/** What the check needs from an HTTP request (header values as received, or absent). */
export interface CsrfRequest {
  readonly method: string;
  readonly secFetchSite?: string | null | undefined;
  readonly origin?: string | null | undefined;
  readonly authorization?: string | null | undefined;
  /**
   * The request's `Host` header. With `sameHostOrigin`, an `Origin` naming this very host is the
   * service's own. The browser sets `Host` from the URL it sends to, so a foreign page cannot make
   * the two agree for the service's cookies.
   */
  readonly host?: string | null | undefined;
}

export interface CsrfAuditEvent {
  readonly type: 'csrf.refused';
  readonly reason: CsrfRefusal;
}

export interface CsrfOptions {
  /** The service's own origin, e.g. `https://forms.example.com`. */
  readonly ownOrigin: string;
  /** Other origins allowed to send unsafe requests. */
  readonly trustedOrigins?: readonly string[];
  /**
   * Also count as own an `Origin` whose host and port equal the request's `Host` header (its
   * scheme must be https when `ownOrigin` is https), for a service reached under several names
   * or whose public address is not known in advance. Default false.
   */
  readonly sameHostOrigin?: boolean;
  /** Accept `Sec-Fetch-Site: same-site` (sibling subdomains). Default false. */
  readonly allowSameSite?: boolean;
  /** Token lifetime. Default 4h. */
  readonly ttl?: Duration;
  readonly audit?: (event: CsrfAuditEvent) => void;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);
const VERSION = 1;
/** Issue times this far in the future still count (clocks of instances differ). */
const CLOCK_SKEW_MS = 60_000;
const RANDOM_BYTES = 16;
const MAC_BYTES = 16;
const BODY_BYTES = 1 + 6 + RANDOM_BYTES;
export const CSRF_TOKEN_LENGTH = Math.ceil(((BODY_BYTES + MAC_BYTES) * 4) / 3);

function originOf(text: string): string | null {
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.origin : null;
  } catch {
    return null;
  }
}

function macData(sessionHandle: string, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from(sessionHandle), Buffer.from([0]), body]);
}

export class Csrf {
  private readonly allowedOrigins: ReadonlySet<string>;
  private readonly ttlMs: number;
  private readonly ownScheme: string;

  constructor(
    private readonly store: MarkerStore,
    private readonly keyRing: KeyRing,
    private readonly options: CsrfOptions,
  ) {
    const origins = [options.ownOrigin, ...(options.trustedOrigins ?? [])].map((text) => {
      const origin = originOf(text);
      if (origin === null || origin !== text.replace(/\/$/, '')) {
        throw new TypeError(`not an origin (scheme://host[:port]): ${text}`);
      }
      return origin;
    });
    this.allowedOrigins = new Set(origins);
    this.ownScheme = new URL(options.ownOrigin).protocol;
    this.ttlMs = toMs('csrf.ttl', options.ttl ?? '4h');
  }

  /**
   * Layers 1 and 2: where the request comes from. Safe methods and bearer-authenticated
   * requests are exempt. A refusal here stands whatever token the request carries.
   * Stops: cross-site form posts and fetches riding the user's cookies, including from a page
   * that somehow obtained a valid token. Does not stop: requests from the service's own origin
   * (XSS), or clients that are not browsers (they carry no ambient cookies to abuse).
   */
  checkRequest(request: CsrfRequest): CsrfResult {
    if (SAFE_METHODS.has(request.method.toUpperCase())) return { ok: true, exempt: 'safe-method' };
    if (request.authorization && /^bearer\s+\S/i.test(request.authorization))
      return { ok: true, exempt: 'bearer' };
    const site = request.secFetchSite?.trim().toLowerCase();
    if (site) {
      // `none` (a user-initiated request) is refused too: no page of ours sends an unsafe one.
      if (site === 'same-origin') return { ok: true };
      if (site === 'same-site' && this.options.allowSameSite === true) return { ok: true };
      return this.refuse(site === 'same-site' ? 'same-site' : 'cross-site');
    }
    const origin = request.origin?.trim();
    if (origin) {
      if (origin === 'null') return this.refuse('null-origin');
      const parsed = originOf(origin) ?? '';
      if (this.allowedOrigins.has(parsed)) return { ok: true };
      return this.isSameHost(parsed, request.host) ? { ok: true } : this.refuse('foreign-origin');
    }
    // Neither header: refused. A Referer is not enough (it can be stripped or rewritten by
    // policies and proxies, and the contract asks for Fetch Metadata or Origin).
    return this.refuse('missing-origin');
  }

  private isSameHost(origin: string, host: string | null | undefined): boolean {
    if (this.options.sameHostOrigin !== true || !host || origin === '') return false;
    const url = new URL(origin);
    if (this.ownScheme === 'https:' && url.protocol !== 'https:') return false;
    // URL drops default ports from `host`; the Host header may carry them.
    const expected = host
      .trim()
      .toLowerCase()
      .replace(url.protocol === 'https:' ? /:443$/ : /:80$/, '');
    return url.host === expected;
  }

  /**
   * Issues a token for the session (identified by its handle). Earlier tokens stay valid until
   * they expire. Nothing is stored: the MAC binds the token to the session and its issue time, so
   * a token verifies on every instance, while the store is down, and after the store lost its
   * data. `revoke` puts a token on a deny-list for the rest of its life.
   * Stops: guessing or forging tokens (128 random bits, MAC under the key ring). Does not stop:
   * the token being read by script on the page that receives it: send it only to the session's
   * own pages, never in a URL.
   */
  issue(session: { readonly handle: string }): Promise<string> {
    const body = Buffer.alloc(BODY_BYTES);
    body[0] = VERSION;
    writeUint48(body, Date.now(), 1);
    randomToken(RANDOM_BYTES).copy(body, 7);
    const token = Buffer.concat([
      body,
      this.keyRing.sign('csrf', macData(session.handle, body), MAC_BYTES),
    ]).toString('base64url');
    return Promise.resolve(token);
  }

  /**
   * Layer 3: the token must be this session's (MAC with its handle, compared in constant time),
   * younger than the TTL, and not revoked. While the store is down, the MAC and the age decide
   * alone.
   * Stops: a token from another session or from before a session rotation, an expired or a
   * revoked token, timing attacks on the comparison. Does not stop: a token used by whoever can
   * read it in the same session (XSS); during a store outage (or after the store lost its data),
   * a revoked token until its 4 hours end; ending the session ends its tokens in any case.
   */
  async verifyToken(session: { readonly handle: string }, token: unknown): Promise<CsrfResult> {
    if (token === undefined || token === null || token === '') return this.refuse('missing-token');
    const bytes = decodeFixed(token, CSRF_TOKEN_LENGTH);
    if (!bytes || bytes.length !== BODY_BYTES + MAC_BYTES || bytes[0] !== VERSION) {
      return this.refuse('malformed-token');
    }
    const body = bytes.subarray(0, BODY_BYTES);
    if (!this.keyRing.verify('csrf', macData(session.handle, body), bytes.subarray(BODY_BYTES))) {
      return this.refuse('invalid-token');
    }
    const ageMs = Date.now() - readUint48(body, 1);
    if (ageMs < -CLOCK_SKEW_MS || ageMs >= this.ttlMs) return this.refuse('expired-token');
    try {
      if ((await this.store.getMarker('csrf', recordId(token as string))) !== null) {
        return this.refuse('revoked-token');
      }
    } catch (error) {
      if (!(error instanceof StoreUnavailableError)) throw error;
    }
    return { ok: true };
  }

  /**
   * All three layers for one request: origin first, then the token. Stops and does not stop
   * what `checkRequest` and `verifyToken` do; the order means a cross-site request is refused
   * even when it carries a valid token.
   */
  async verify(
    session: { readonly handle: string },
    token: unknown,
    request: CsrfRequest,
  ): Promise<CsrfResult> {
    const origin = this.checkRequest(request);
    if (!origin.ok || origin.exempt !== undefined) return origin;
    return this.verifyToken(session, token);
  }

  /**
   * Revokes one token before its time (e.g. a token that was logged or leaked). Stops: its use
   * from now on, on every instance. Does not stop: its use while the store is down (the MAC still
   * verifies), which ends when the store answers again.
   */
  async revoke(token: string): Promise<void> {
    const bytes = decodeFixed(token, CSRF_TOKEN_LENGTH);
    if (!bytes || bytes.length !== BODY_BYTES + MAC_BYTES || bytes[0] !== VERSION) return;
    // Denied for as long as the token could still verify on any instance's clock.
    const leftMs = readUint48(bytes, 1) + this.ttlMs + CLOCK_SKEW_MS - Date.now();
    if (leftMs <= 0) return;
    await this.store.setMarker('csrf', recordId(token), 'revoked', leftMs, 'always');
  }

  private refuse(reason: CsrfRefusal): CsrfResult {
    this.options.audit?.({ type: 'csrf.refused', reason });
    return { ok: false, reason };
  }
}
