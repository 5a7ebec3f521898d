/**
 * Distributed sessions: every instance can create, validate, list and end them; only hashes of
 * tokens and sealed (AES-256-GCM) payloads reach the store.
 *
 * Token: 59 base64url characters, the user's 16-character pseudonym (HMAC of the user id, the
 * Cluster hash tag that keeps a user's keys together) followed by 43 characters of 256 random
 * bits. Only the first 128 bits of its SHA-256 name the stored session; a leaked key, dump or
 * handle does not give back the token.
 *
 * Handle: the public name of a session (listing, termination): the same pseudonym followed by the
 * 22-character token hash. It is not a credential: validating needs the token itself.
 *
 * Activity: a validation writes at most once per `touchInterval` (default 60 s); the requests
 * counted in between are buffered in this process and written with the next write, or by the
 * periodic flush. The idle deadline is therefore enforced from the last write, at most one
 * touch interval earlier than the strict deadline: on the safe side.
 */
import { createHash } from 'node:crypto';

import type { KeyRing } from '../crypto/keyring.js';
import { StoreUnavailableError } from '../errors.js';
import {
  SESSION_END_REASONS,
  type SessionEndReason,
  type SessionLimits,
  type SessionRef,
  type SessionStore,
  type StoredSession,
} from '../store/session-store.js';
import { toMs, type Duration } from '../util/duration.js';
import { randomToken } from '../util/tokens.js';
import type { DurableSession, SqlSessionRepository } from './repository.js';

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

export interface SessionInput {
  readonly userId: string;
  readonly organizationId?: string | null;
  readonly roles?: readonly string[];
  readonly permissions?: readonly string[];
  /** Personal data: sealed with the payload, never stored in clear. */
  readonly ip?: string | null;
  /** Personal data: sealed with the payload, never stored in clear. */
  readonly userAgent?: string | null;
  /** e.g. `password`, `sso`, `passkey`. Default `password`. */
  readonly authMethod?: string;
  /** Your own data (JSON), sealed with the rest. */
  readonly data?: JsonValue;
}

export interface Session {
  /** Public name of the session (not the token): list, show and terminate by it. */
  readonly handle: string;
  readonly userId: string;
  readonly organizationId: string | null;
  readonly roles: readonly string[];
  readonly permissions: readonly string[];
  readonly authMethod: string;
  readonly ip: string | null;
  readonly userAgent: string | null;
  readonly data: JsonValue | null;
  readonly createdAtMs: number;
  readonly lastSeenAtMs: number;
  /** When it ends if unused: min(last activity + idle timeout, absolute expiry). */
  readonly idleExpiresAtMs: number;
  readonly absoluteExpiresAtMs: number;
  readonly requestCount: number;
}

export type SessionAuditType =
  | 'session.created'
  | 'session.rotated'
  | 'session.revoked'
  | 'session.evicted'
  | 'session.expired-idle'
  | 'session.expired-absolute';

/** An audit record: who and what, never a token or a handle in clear. */
export interface SessionAuditEvent {
  readonly type: SessionAuditType;
  /** The user id, when known (always, except for a revocation of a session already gone). */
  readonly userId: string | null;
  /** Salted hash of the session handle: correlates records without naming the session. */
  readonly sessionHash: string;
}

export interface SessionsOptions {
  /** Default 30m. */
  readonly idleTimeout?: Duration;
  /** Default 12h. */
  readonly absoluteTimeout?: Duration;
  /** Default 5; the oldest session is ended when a user signs in once more. */
  readonly maxPerUser?: number;
  /** Write activity at most this often per session. Default 60s. */
  readonly touchInterval?: Duration;
  /** Write buffered activity this often. Default: the touch interval. */
  readonly flushInterval?: Duration;
  /** Receives an event for every session created, rotated, revoked, evicted or expired. */
  readonly audit?: (event: SessionAuditEvent) => void;
  /**
   * Durable mode: every session also kept in SQL. Redis stays the cache in front: a miss
   * refills from SQL (never an ended session), and while Redis is down validation reads SQL.
   */
  readonly repository?: SessionRepository;
  /**
   * How long this process may answer a validated session from memory without asking the store.
   * Default 1s; 0 turns it off. Used only while this instance listens to ended-session events,
   * which drop an ended session from the cache at once; the TTL bounds the staleness should an
   * event be lost (a subscriber that reconnected). Touch writes and deadlines are still honoured.
   */
  readonly localCacheTtl?: Duration;
  /** Sessions kept in the local cache at most. Default 10,000. */
  readonly localCacheMaxEntries?: number;
}

interface CachedSession {
  readonly ref: SessionRef;
  readonly session: Session;
  /** The stored request count when cached; buffered requests come on top. */
  readonly storedRequestCount: number;
  /** Local clock: the first of cache TTL, touch due, idle or absolute deadline. */
  readonly validUntilMs: number;
}

/** After a failed subscription, try again no sooner than this. */
const CACHE_RETRY_MS = 5000;

/** What durable mode needs from SQL (see SqlSessionRepository). */
export type SessionRepository = Pick<
  SqlSessionRepository,
  'insert' | 'find' | 'listLive' | 'end' | 'endAll' | 'touch' | 'endedSince'
>;

/** Revocations replayed after an outage reach back this far before it began (clock skew). */
const RECONCILE_MARGIN_MS = 60_000;

/** A session ended on some instance: close its live connections (SSE, WebSocket). */
export interface SessionEndedEvent {
  readonly handle: string;
  readonly reason: SessionEndReason;
  /** The application's word for why, when `revoke` was given one (e.g. `signout`). */
  readonly cause?: string;
}

/** A revocation cause: a short lower-case word, carried to every instance with the event. */
const CAUSE = /^[a-z][a-z0-9-]{0,31}$/;

export type SessionValidationResult =
  | { readonly session: Session; readonly reason: null }
  | { readonly session: null; readonly reason: SessionEndReason | null };

const DEFAULT_AUTH_METHOD = 'password';
const PSEUDONYM_LENGTH = 16;
const SECRET_BYTES = 32;
export const TOKEN_LENGTH = PSEUDONYM_LENGTH + 43;
const TOKEN_HASH_LENGTH = 22;
export const HANDLE_LENGTH = PSEUDONYM_LENGTH + TOKEN_HASH_LENGTH;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
/** Buffered activity entries before a flush is forced, so memory stays bounded. */
const MAX_BUFFERED = 10_000;
const FLUSH_CONCURRENCY = 32;

interface Payload {
  u: string;
  o: string | null;
  r: string[];
  p: string[];
  m: string;
  i: string | null;
  a: string | null;
  d: JsonValue | null;
}

interface BufferedActivity {
  readonly ref: SessionRef;
  pending: number;
  lastSeenAtMs: number;
}

function tokenHashOf(token: string): string {
  return createHash('sha256').update(token).digest('base64url').slice(0, TOKEN_HASH_LENGTH);
}

/** Where a token's session lives, or null when the token cannot be one (no store call needed). */
export function refFromToken(token: unknown): SessionRef | null {
  if (typeof token !== 'string' || token.length !== TOKEN_LENGTH || !BASE64URL.test(token)) return null;
  return { uid: token.slice(0, PSEUDONYM_LENGTH), tokenHash: tokenHashOf(token) };
}

/** Where a handle's session lives, or null when it cannot be a handle. */
export function refFromHandle(handle: unknown): SessionRef | null {
  if (typeof handle !== 'string' || handle.length !== HANDLE_LENGTH || !BASE64URL.test(handle)) return null;
  return { uid: handle.slice(0, PSEUDONYM_LENGTH), tokenHash: handle.slice(PSEUDONYM_LENGTH) };
}

function handleOf(ref: SessionRef): string {
  return ref.uid + ref.tokenHash;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

function checkStrings(name: string, values: unknown): string[] {
  if (values === undefined) return [];
  if (!Array.isArray(values)) throw new TypeError(`${name} must be an array of strings`);
  return values.map((value: unknown) => {
    if (typeof value !== 'string') throw new TypeError(`${name} must be an array of strings`);
    return value;
  });
}

export class Sessions {
  private readonly limits: SessionLimits;
  private readonly touchIntervalMs: number;
  private readonly buffered = new Map<string, BufferedActivity>();
  private readonly flushTimer: NodeJS.Timeout;
  private flushing: Promise<void> | undefined;
  private readonly channel: string;
  private readonly endedListeners = new Set<(event: SessionEndedEvent) => void>();
  private subscription: Promise<() => Promise<void>> | undefined;
  private readonly repository: SessionRepository | undefined;
  /** When this instance first saw the store fail in the current outage (durable mode). */
  private outageSinceMs: number | null = null;
  private reconciling: Promise<void> | undefined;
  private readonly cache = new Map<string, CachedSession>();
  /**
   * Whose each session is, for sessions this instance has validated: a session's user never
   * changes, so this outlives the cache's one second (see ownerOf). Forgotten when the session
   * ends or fails to validate.
   */
  private readonly owners = new Map<string, string>();
  /** The last payload opened per session, with the sealed bytes it came from. */
  private readonly opened = new Map<string, { readonly sealed: Buffer; readonly payload: Payload }>();
  private readonly cacheTtlMs: number;
  private readonly cacheMaxEntries: number;
  private cacheState: 'off' | 'starting' | 'on' = 'off';
  /**
   * Counts invalidations. A validation that was in flight while one happened does not cache its
   * result: it may have read the session just before it ended.
   */
  private cacheGeneration = 0;
  private cacheRetryAtMs = 0;
  /** Keeps the ended-events subscription alive for the cache; deliver() does the invalidation. */
  private readonly cacheListener = (): void => undefined;

  constructor(
    private readonly store: SessionStore,
    private readonly keyRing: KeyRing,
    private readonly options: SessionsOptions = {},
  ) {
    const idleTimeoutMs = toMs('sessions.idleTimeout', options.idleTimeout ?? '30m');
    const absoluteTimeoutMs = toMs('sessions.absoluteTimeout', options.absoluteTimeout ?? '12h');
    const maxPerUser = options.maxPerUser ?? 5;
    if (idleTimeoutMs < 1000 || absoluteTimeoutMs < idleTimeoutMs) {
      throw new TypeError('sessions: idleTimeout must be at least 1s and at most absoluteTimeout');
    }
    if (!Number.isSafeInteger(maxPerUser) || maxPerUser < 1) {
      throw new TypeError('sessions.maxPerUser must be an integer of at least 1');
    }
    this.limits = { idleTimeoutMs, absoluteTimeoutMs, maxPerUser, reasonTtlMs: absoluteTimeoutMs };
    this.touchIntervalMs = toMs('sessions.touchInterval', options.touchInterval ?? '60s');
    const flushIntervalMs = toMs('sessions.flushInterval', options.flushInterval ?? this.touchIntervalMs);
    this.flushTimer = setInterval(() => void this.flush(), Math.max(flushIntervalMs, 100));
    this.flushTimer.unref();
    this.channel = store.keys.channel('sess', 'ended');
    this.repository = options.repository;
    this.cacheTtlMs = toMs('sessions.localCacheTtl', options.localCacheTtl ?? '1s');
    this.cacheMaxEntries = options.localCacheMaxEntries ?? 10_000;
  }

  /**
   * Calls `listener` whenever a session ends on any instance sharing the store (revoked, evicted
   * for the limit, rotated), within milliseconds, over pub/sub (sharded on Cluster). Resolves
   * once listening; the returned function stops it. Delivery is at most once: a listener that
   * was disconnected at that moment misses the event, and validation refuses the session anyway.
   */
  async onEnded(listener: (event: SessionEndedEvent) => void): Promise<() => Promise<void>> {
    this.endedListeners.add(listener);
    try {
      this.subscription ??= this.store.subscribe(this.channel, (message) => {
        this.deliver(message);
      });
      await this.subscription;
    } catch (error) {
      this.endedListeners.delete(listener);
      if (this.endedListeners.size === 0) this.subscription = undefined;
      throw error;
    }
    return async () => {
      this.endedListeners.delete(listener);
      await this.stopListening();
    };
  }

  /**
   * True while validations may be answered from the local cache: the instance listens to
   * ended-session events (it starts listening at its first validation). Readiness probes can
   * report it as the state of the pub/sub subscriber.
   */
  get localCacheActive(): boolean {
    return this.cacheState === 'on';
  }

  /** The user's pseudonym: the hash tag of their keys and the first part of their tokens and handles. */
  userPseudonym(userId: string): string {
    return this.keyRing.identifier('user', userId, PSEUDONYM_LENGTH);
  }

  /**
   * Creates a session. The token is returned once and never stored; keep it in a cookie or give
   * it to the API client. When the user is at the limit, their oldest sessions end here.
   */
  async create(input: SessionInput): Promise<{ token: string; session: Session }> {
    if (typeof input.userId !== 'string' || input.userId === '')
      throw new TypeError('userId must be a non-empty string');
    const payload: Payload = {
      u: input.userId,
      o: input.organizationId ?? null,
      r: checkStrings('roles', input.roles),
      p: checkStrings('permissions', input.permissions),
      m: input.authMethod ?? DEFAULT_AUTH_METHOD,
      i: input.ip ?? null,
      a: input.userAgent ?? null,
      d: input.data ?? null,
    };
    const uid = this.userPseudonym(input.userId);
    const token = uid + randomToken(SECRET_BYTES).toString('base64url');
    const ref = { uid, tokenHash: tokenHashOf(token) };
    const { session, evicted } = await this.storeCall(() =>
      this.store.createSession(ref, this.seal(ref, payload), this.limits),
    );
    if (this.repository) {
      try {
        await this.repository.insert(uid, session);
        await this.repository.end(uid, evicted, 'evicted-limit', Date.now());
      } catch (error) {
        // Not durable, so not created: take it back out of Redis.
        await this.store.revokeSession(ref, 'revoked', this.limits.reasonTtlMs).catch(() => undefined);
        throw error;
      }
    }
    this.audit('session.created', input.userId, ref);
    for (const tokenHash of evicted) {
      this.uncache(uid + tokenHash);
      this.audit('session.evicted', input.userId, { uid, tokenHash });
    }
    await this.discard(uid, evicted);
    await this.announce(
      evicted.map((tokenHash) => uid + tokenHash),
      'evicted-limit',
    );
    return { token, session: this.present(ref, session, payload) };
  }

  /** The live session of `token`, or null (unknown, expired, ended or malformed: never throws for those). */
  validate(token: unknown): Promise<Session | null> {
    return this.validateWithReason(token).then((result) => result.session);
  }

  /** Like `validate`, and says why a session is gone when the store knows. */
  async validateWithReason(token: unknown): Promise<SessionValidationResult> {
    const ref = refFromToken(token);
    if (!ref) return { session: null, reason: null };
    return this.validateRef(ref);
  }

  /**
   * Validates a session by its public handle, counting the use as activity like `validate`.
   * Handles are not secrets (they are listed to their users): call this only with a handle taken
   * from a credential the service has verified itself, such as the `sid` claim of a signed access
   * token.
   */
  async validateHandle(handle: unknown): Promise<SessionValidationResult> {
    const ref = refFromHandle(handle);
    if (!ref) return { session: null, reason: null };
    return this.validateRef(ref);
  }

  private async validateRef(ref: SessionRef): Promise<SessionValidationResult> {
    const key = handleOf(ref);
    if (this.cacheTtlMs > 0) {
      const cached = this.fromCache(key);
      if (cached) return { session: cached, reason: null };
      this.startCacheListening();
    }
    const buffered = this.buffered.get(key);
    const pending = (buffered?.pending ?? 0) + 1;
    const generation = this.cacheGeneration;
    let result;
    try {
      result = await this.storeCall(() =>
        this.store.validateSession(ref, {
          touchIntervalMs: this.touchIntervalMs,
          pendingCount: pending,
          absoluteTimeoutMs: this.limits.absoluteTimeoutMs,
          reasonTtlMs: this.limits.reasonTtlMs,
        }),
      );
    } catch (error) {
      if (this.repository && error instanceof StoreUnavailableError)
        return this.validateFromSql(ref, this.repository);
      throw error;
    }
    if (result.session === null) {
      this.buffered.delete(key);
      this.owners.delete(key);
      if (result.reason === 'expired-idle' || result.reason === 'expired-absolute') {
        const payload = result.expired ? this.openPayload(ref, result.expired) : null;
        this.audit(`session.${result.reason}`, payload?.u ?? null, ref);
      }
      if (result.reason === null && this.repository) return this.refillFromSql(ref, this.repository);
      return { session: null, reason: result.reason };
    }
    const payload = this.openPayload(ref, result.session);
    if (!payload) return { session: null, reason: null };
    let stored = result.session;
    if (result.touched) {
      this.buffered.delete(key);
      this.repository?.touch(ref.uid, ref.tokenHash, result.nowMs, pending).catch(() => undefined);
    } else {
      this.buffered.set(key, { ref, pending, lastSeenAtMs: result.nowMs });
      stored = { ...stored, lastSeenAtMs: result.nowMs, requestCount: stored.requestCount + pending };
      if (this.buffered.size >= MAX_BUFFERED) void this.flush();
    }
    const session = this.present(ref, stored, payload);
    if (generation === this.cacheGeneration) {
      this.toCache(key, ref, session, result.session, result.nowMs);
      this.rememberOwner(key, session.userId);
    }
    return { session, reason: null };
  }

  /** Forgets a session that ended (or may have). */
  private uncache(handle: string): void {
    this.cacheGeneration++;
    this.cache.delete(handle);
    this.opened.delete(handle);
    this.owners.delete(handle);
  }

  /**
   * The user of the session `token` names, when this instance has validated that session before
   * and has not seen it end; else undefined. Not a validation: the session may have ended since.
   * It lets a caller start work keyed by the user (a per-user rate-limit charge) together with
   * the validation instead of after it. A token this instance never validated (a forged one)
   * gets undefined.
   */
  ownerOf(token: unknown): string | undefined {
    const ref = refFromToken(token);
    return ref ? this.owners.get(handleOf(ref)) : undefined;
  }

  private rememberOwner(handle: string, userId: string): void {
    if (this.owners.get(handle) === userId) return;
    if (this.owners.size >= this.cacheMaxEntries) {
      const oldest = this.owners.keys().next();
      if (!oldest.done) this.owners.delete(oldest.value);
    }
    this.owners.set(handle, userId);
  }

  private uncacheAll(): void {
    this.cacheGeneration++;
    this.cache.clear();
  }

  /** A cached session still within every bound, with this request counted; else null. */
  private fromCache(key: string): Session | null {
    const entry = this.cache.get(key);
    if (!entry) return null;
    const now = Date.now();
    // A store that is not connected answers nothing from the cache either: Redis down means 503.
    if (this.cacheState !== 'on' || now >= entry.validUntilMs || !this.store.isReady()) {
      this.cache.delete(key);
      return null;
    }
    const pending = (this.buffered.get(key)?.pending ?? 0) + 1;
    this.buffered.set(key, { ref: entry.ref, pending, lastSeenAtMs: now });
    return { ...entry.session, lastSeenAtMs: now, requestCount: entry.storedRequestCount + pending };
  }

  private toCache(
    key: string,
    ref: SessionRef,
    session: Session,
    stored: StoredSession,
    serverNowMs: number,
  ): void {
    if (this.cacheTtlMs === 0 || this.cacheState !== 'on') return;
    // Deadlines come from the server's clock; turn them into spans from now on ours.
    const spanMs = Math.min(
      this.cacheTtlMs,
      stored.lastSeenAtMs + this.touchIntervalMs - serverNowMs,
      stored.lastSeenAtMs + stored.idleTimeoutMs - serverNowMs,
      stored.absoluteExpiresAtMs - serverNowMs,
    );
    if (spanMs <= 0) return;
    if (this.cache.size >= this.cacheMaxEntries && !this.cache.has(key)) {
      const oldest = this.cache.keys().next();
      if (!oldest.done) this.cache.delete(oldest.value);
    }
    this.cache.set(key, {
      ref,
      session,
      storedRequestCount: stored.requestCount,
      validUntilMs: Date.now() + spanMs,
    });
  }

  /** The cache serves only while ended-session events arrive; start listening in the background. */
  private startCacheListening(): void {
    if (this.cacheState !== 'off' || Date.now() < this.cacheRetryAtMs) return;
    this.cacheState = 'starting';
    this.onEnded(this.cacheListener).then(
      () => {
        this.cacheState = this.endedListeners.has(this.cacheListener) ? 'on' : 'off';
      },
      () => {
        this.cacheState = 'off';
        this.cacheRetryAtMs = Date.now() + CACHE_RETRY_MS;
      },
    );
  }

  /** A user's live sessions, oldest first (handles, never tokens). */
  async list(userId: string): Promise<Session[]> {
    const uid = this.userPseudonym(userId);
    let stored: readonly StoredSession[];
    try {
      stored = await this.storeCall(() => this.store.listSessions(uid, this.limits));
    } catch (error) {
      if (!(this.repository && error instanceof StoreUnavailableError)) throw error;
      stored = (await this.repository.listLive(uid)).filter((row) => this.sqlRowGone(row) === null);
    }
    return stored.flatMap((session) => {
      const ref = { uid, tokenHash: session.tokenHash };
      const payload = this.openPayload(ref, session);
      if (!payload) return [];
      const activity = this.buffered.get(handleOf(ref));
      const current = activity
        ? {
            ...session,
            lastSeenAtMs: Math.max(session.lastSeenAtMs, activity.lastSeenAtMs),
            requestCount: session.requestCount + activity.pending,
          }
        : session;
      return [this.present(ref, current, payload)];
    });
  }

  /**
   * Ends the session named by `handle`. With `userId`, only if the session is that user's (so a
   * user can never end someone else's). `cause` (e.g. `signout`) reaches every `onEnded`
   * listener with the event. True when a live session was ended.
   */
  async revoke(handle: string, options: { userId?: string; cause?: string } = {}): Promise<boolean> {
    if (options.cause !== undefined && !CAUSE.test(options.cause)) {
      throw new TypeError('cause must be a lower-case word of up to 32 letters, digits and dashes');
    }
    const ref = refFromHandle(handle);
    if (!ref) return false;
    if (options.userId !== undefined && this.userPseudonym(options.userId) !== ref.uid) return false;
    this.buffered.delete(handle);
    this.uncache(handle);
    let ended = false;
    let session: StoredSession | null = null;
    try {
      ({ ended, session } = await this.storeCall(() =>
        this.store.revokeSession(ref, 'revoked', this.limits.reasonTtlMs),
      ));
    } catch (error) {
      // Durable mode: SQL keeps the revocation, and Redis gets it when it is back (reconcile).
      if (!(this.repository && error instanceof StoreUnavailableError)) throw error;
    }
    if (this.repository) {
      const endedInSql = await this.repository.end(ref.uid, [ref.tokenHash], 'revoked', Date.now());
      ended ||= endedInSql.length > 0;
    }
    if (ended) {
      const userId = options.userId ?? (session ? (this.openPayload(ref, session)?.u ?? null) : null);
      this.audit('session.revoked', userId, ref);
      await this.announce([handle], 'revoked', options.cause);
    }
    return ended;
  }

  /** Ends every session of the user ("log out everywhere"); returns how many. */
  async revokeAll(userId: string): Promise<number> {
    return this.revokeUser(userId, null);
  }

  /** Ends every session of the user but `currentHandle`; returns how many. */
  async revokeOthers(userId: string, currentHandle: string): Promise<number> {
    const current = refFromHandle(currentHandle);
    if (!current || current.uid !== this.userPseudonym(userId)) {
      throw new TypeError('currentHandle is not a session handle of this user');
    }
    return this.revokeUser(userId, current.tokenHash);
  }

  /**
   * Moves a live session to a new token (sign-in, privilege change): same data, same creation
   * time and deadlines, and the old token is dead at once. Null when `token` is not live.
   */
  async rotate(token: string): Promise<{ token: string; session: Session } | null> {
    const current = await this.validate(token);
    const ref = refFromToken(token);
    if (!current || !ref) return null;
    const payload = this.payloadOf(current);
    const newToken = ref.uid + randomToken(SECRET_BYTES).toString('base64url');
    const newRef = { uid: ref.uid, tokenHash: tokenHashOf(newToken) };
    this.buffered.delete(handleOf(ref));
    this.uncache(handleOf(ref));
    const rotated = await this.storeCall(() =>
      this.store.rotateSession(ref, newRef.tokenHash, this.seal(newRef, payload), this.limits.reasonTtlMs),
    );
    if (!rotated) return null;
    if (this.repository) {
      await this.repository.insert(ref.uid, rotated);
      await this.repository.end(ref.uid, [ref.tokenHash], 'rotated', Date.now());
    }
    this.audit('session.rotated', current.userId, newRef);
    await this.announce([handleOf(ref)], 'rotated');
    return { token: newToken, session: this.present(newRef, rotated, payload) };
  }

  /** Writes buffered activity now (also runs on a timer, and at close). */
  async flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    const batch = [...this.buffered.values()];
    this.buffered.clear();
    this.flushing = (async () => {
      for (let start = 0; start < batch.length; start += FLUSH_CONCURRENCY) {
        await Promise.allSettled(
          batch.slice(start, start + FLUSH_CONCURRENCY).map(async (activity) => {
            const { ref, pending, lastSeenAtMs } = activity;
            await this.store.touchSession(ref, pending, lastSeenAtMs);
            await this.repository?.touch(ref.uid, ref.tokenHash, lastSeenAtMs, pending);
          }),
        );
      }
    })().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  /** Flushes buffered activity and stops the flush timer. */
  async close(): Promise<void> {
    clearInterval(this.flushTimer);
    this.endedListeners.clear();
    this.uncacheAll();
    this.cacheState = 'off';
    this.cacheRetryAtMs = Number.POSITIVE_INFINITY;
    await Promise.allSettled([this.flush(), this.stopListening()]);
  }

  private async stopListening(): Promise<void> {
    if (this.endedListeners.size > 0 || !this.subscription) return;
    const subscription = this.subscription;
    this.subscription = undefined;
    try {
      await (
        await subscription
      )();
    } catch {
      // Not subscribed, or the store is gone: nothing is listening either way.
    }
  }

  /** Tells every instance which sessions ended. Best effort: the sessions are ended either way. */
  private async announce(
    handles: readonly string[],
    reason: SessionEndReason,
    cause?: string,
  ): Promise<void> {
    if (handles.length === 0) return;
    try {
      await this.store.publish(
        this.channel,
        JSON.stringify(cause === undefined ? { h: handles, r: reason } : { h: handles, r: reason, c: cause }),
      );
    } catch {
      // Validation refuses them anyway; listeners learn at their next check.
    }
  }

  private deliver(message: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(message);
    } catch {
      return;
    }
    if (typeof parsed !== 'object' || parsed === null) return;
    const { h: handles, r: reason, c: cause } = parsed as { h?: unknown; r?: unknown; c?: unknown };
    const knownReason = SESSION_END_REASONS.find((candidate) => candidate === reason);
    if (!Array.isArray(handles) || !knownReason) return;
    const event =
      typeof cause === 'string' && CAUSE.test(cause)
        ? { reason: knownReason, cause }
        : { reason: knownReason };
    for (const handle of handles) {
      if (typeof handle !== 'string' || refFromHandle(handle) === null) continue;
      this.uncache(handle);
      for (const listener of this.endedListeners) {
        try {
          listener({ handle, ...event });
        } catch {
          // One listener's failure must not keep the others from hearing.
        }
      }
    }
  }

  /**
   * Replays revocations that SQL recorded since `sinceMs` into the store: the ones made while
   * Redis was down, so a session revoked during an outage stays revoked once Redis is back.
   * Runs by itself when this instance sees the store answer again; returns how many it ended.
   */
  async reconcile(sinceMs: number): Promise<number> {
    if (!this.repository) return 0;
    let ended = 0;
    for (const row of await this.repository.endedSince(sinceMs)) {
      const ref = { uid: row.uid, tokenHash: row.tokenHash };
      const result = await this.store.revokeSession(ref, row.endReason ?? 'revoked', this.limits.reasonTtlMs);
      if (result.ended) {
        ended++;
        await this.announce([handleOf(ref)], row.endReason ?? 'revoked');
      }
    }
    return ended;
  }

  /**
   * Runs a store call. In durable mode, the first call after this instance saw the store fail
   * first replays the revocations SQL recorded meanwhile, so nothing served after an outage can
   * be a session that was revoked during it.
   */
  private storeCall<T>(call: () => Promise<T>): Promise<T> {
    const run = () =>
      call().catch((error: unknown) => {
        if (error instanceof StoreUnavailableError) {
          this.outageSinceMs ??= Date.now();
          // Events published meanwhile may be lost: nothing cached before the outage is trusted.
          this.uncacheAll();
        }
        throw error;
      });
    if (!this.repository || this.outageSinceMs === null) return run();
    this.reconciling ??= this.reconcile(this.outageSinceMs - RECONCILE_MARGIN_MS)
      .then(() => {
        this.outageSinceMs = null;
      })
      .finally(() => {
        this.reconciling = undefined;
      });
    return this.reconciling.then(run);
  }

  /** Validation while the store is down (durable mode): the SQL row decides, tombstones included. */
  private async validateFromSql(
    ref: SessionRef,
    repository: SessionRepository,
  ): Promise<SessionValidationResult> {
    const live = await this.liveFromSql(ref, repository);
    if ('refused' in live) return live.refused;
    const { row, payload } = live;
    const now = Date.now();
    let current: StoredSession = row;
    if (now - row.lastSeenAtMs >= this.touchIntervalMs) {
      await repository.touch(ref.uid, ref.tokenHash, now, 1);
      current = { ...row, lastSeenAtMs: now, requestCount: row.requestCount + 1 };
    }
    return { session: this.present(ref, current, payload), reason: null };
  }

  /** A store miss in durable mode: refill the cache from SQL unless the session ended or expired. */
  private async refillFromSql(
    ref: SessionRef,
    repository: SessionRepository,
  ): Promise<SessionValidationResult> {
    const live = await this.liveFromSql(ref, repository);
    if ('refused' in live) return live.refused;
    const restored = await this.storeCall(() => this.store.restoreSession(ref, live.row, this.limits));
    if (!restored) return { session: null, reason: null };
    return { session: this.present(ref, live.row, live.payload), reason: null };
  }

  /** The SQL row of a live session and its payload, or the answer saying why there is none. */
  private async liveFromSql(
    ref: SessionRef,
    repository: SessionRepository,
  ): Promise<{ row: DurableSession; payload: Payload } | { refused: SessionValidationResult }> {
    const row = await repository.find(ref.uid, ref.tokenHash);
    const gone = this.sqlRowGone(row);
    if (gone || !row) return { refused: { session: null, reason: gone ? gone.reason : null } };
    const payload = this.openPayload(ref, row);
    if (!payload) return { refused: { session: null, reason: null } };
    return { row, payload };
  }

  /** Why a SQL row is no session (ended, or past a deadline), or null when it is live. */
  private sqlRowGone(row: DurableSession | null): { reason: SessionEndReason | null } | null {
    if (!row) return null;
    if (row.endedAtMs !== null) return { reason: row.endReason };
    const now = Date.now();
    if (now >= row.absoluteExpiresAtMs) return { reason: 'expired-absolute' };
    if (now >= row.lastSeenAtMs + row.idleTimeoutMs) return { reason: 'expired-idle' };
    return null;
  }

  private async revokeUser(userId: string, exceptTokenHash: string | null): Promise<number> {
    const uid = this.userPseudonym(userId);
    let ended: readonly string[] = [];
    try {
      ended = await this.storeCall(() =>
        this.store.revokeUserSessions(uid, exceptTokenHash, 'revoked', this.limits.reasonTtlMs),
      );
    } catch (error) {
      if (!(this.repository && error instanceof StoreUnavailableError)) throw error;
    }
    if (this.repository) {
      const endedInSql = await this.repository.endAll(uid, exceptTokenHash, 'revoked', Date.now());
      ended = [...new Set([...ended, ...endedInSql])];
    }
    for (const tokenHash of ended) {
      this.buffered.delete(uid + tokenHash);
      this.uncache(uid + tokenHash);
      this.audit('session.revoked', userId, { uid, tokenHash });
    }
    await this.discard(uid, ended);
    await this.announce(
      ended.map((tokenHash) => uid + tokenHash),
      'revoked',
    );
    return ended.length;
  }

  /**
   * Removes the keys of sessions that were just ended. They are dead already (out of the index,
   * so validation refuses them); this only frees their memory sooner than their TTL would.
   */
  private async discard(uid: string, tokenHashes: readonly string[]): Promise<void> {
    if (tokenHashes.length === 0) return;
    try {
      await this.store.discardSessions(uid, tokenHashes);
    } catch {
      // Their TTL removes them anyway; validation refuses them meanwhile.
    }
  }

  /**
   * Seals the payload as a JSON array with defaults left out at the end: field names and
   * default values would cost Redis memory on every session (and push values past a jemalloc
   * size class).
   */
  private seal(ref: SessionRef, payload: Payload): Buffer {
    const fields: unknown[] = [
      payload.u,
      payload.o,
      payload.r,
      payload.i,
      payload.a,
      payload.m === DEFAULT_AUTH_METHOD ? null : payload.m,
      payload.p.length === 0 ? null : payload.p,
      payload.d,
    ];
    while (fields.length > 0 && fields[fields.length - 1] === null) fields.pop();
    return this.keyRing.seal(Buffer.from(JSON.stringify(fields)), handleOf(ref));
  }

  /**
   * The payload, or null when no key of the ring opens it (a key retired too early, or
   * tampering). The last payload opened per session is kept with its sealed bytes: when the
   * store returns the very same bytes (authenticated the first time), decrypting them again
   * would give the same result. This saves work only; validity is still the store's answer.
   */
  private openPayload(ref: SessionRef, stored: StoredSession): Payload | null {
    const handle = handleOf(ref);
    const known = this.opened.get(handle);
    if (known?.sealed.equals(stored.payload)) return known.payload;
    const payload = this.decryptPayload(handle, stored.payload);
    if (payload) {
      if (this.opened.size >= this.cacheMaxEntries && !this.opened.has(handle)) {
        const oldest = this.opened.keys().next();
        if (!oldest.done) this.opened.delete(oldest.value);
      }
      this.opened.set(handle, { sealed: Buffer.from(stored.payload), payload });
    }
    return payload;
  }

  private decryptPayload(handle: string, sealed: Buffer): Payload | null {
    const plaintext = this.keyRing.open(sealed, handle);
    if (!plaintext) return null;
    const [u, o, r, i, a, m, p, d] = JSON.parse(plaintext.toString()) as [
      string,
      (string | null)?,
      string[]?,
      (string | null)?,
      (string | null)?,
      (string | null)?,
      (string[] | null)?,
      (JsonValue | null)?,
    ];
    // Frozen: payloads are shared by every Session object made from them.
    return deepFreeze({
      u,
      o: o ?? null,
      r: r ?? [],
      i: i ?? null,
      a: a ?? null,
      m: m ?? DEFAULT_AUTH_METHOD,
      p: p ?? [],
      d: d ?? null,
    });
  }

  private payloadOf(session: Session): Payload {
    return {
      u: session.userId,
      o: session.organizationId,
      r: [...session.roles],
      p: [...session.permissions],
      m: session.authMethod,
      i: session.ip,
      a: session.userAgent,
      d: session.data,
    };
  }

  private present(ref: SessionRef, stored: StoredSession, payload: Payload): Session {
    return {
      handle: handleOf(ref),
      userId: payload.u,
      organizationId: payload.o,
      roles: payload.r,
      permissions: payload.p,
      authMethod: payload.m,
      ip: payload.i,
      userAgent: payload.a,
      data: payload.d,
      createdAtMs: stored.createdAtMs,
      lastSeenAtMs: stored.lastSeenAtMs,
      idleExpiresAtMs: Math.min(stored.lastSeenAtMs + stored.idleTimeoutMs, stored.absoluteExpiresAtMs),
      absoluteExpiresAtMs: stored.absoluteExpiresAtMs,
      requestCount: stored.requestCount,
    };
  }

  private audit(type: SessionAuditType, userId: string | null, ref: SessionRef): void {
    this.options.audit?.({ type, userId, sessionHash: this.keyRing.auditHash(handleOf(ref)) });
  }
}
