/**
 * Distributed sessions: every instance can create, validate, list and end them; only hashes of
 * tokens and sealed (AES-256-GCM) payloads reach the store. Sessions is the public class; it ties
 * together the parts in packages/gatehouse/src/sessions/: the token format (token.ts), the sealed
 * payload (payload.ts), this instance's cache (local-cache.ts), buffered activity
 * (activity-buffer.ts), ended-session events (ended-events.ts) and durable mode (durable.ts, on
 * the SessionRepository of repository.ts).
 */
import type { KeyRing } from '../crypto/keyring.js';
import { StoreUnavailableError } from '../errors.js';
import type { SessionLimits, SessionRef, SessionStore, StoredSession } from '../store/session-store.js';
import { toMs } from '../util/duration.js';
import { ActivityBuffer } from './activity-buffer.js';
import { DurableSessions } from './durable.js';
import { EndedSessionEvents, isRevocationCause } from './ended-events.js';
import { LocalCache } from './local-cache.js';
import {
  openPayload,
  payloadFromInput,
  payloadOf,
  presentSession,
  sealPayload,
  type Payload,
} from './payload.js';
import {
  handleOf,
  newToken,
  refFromHandle,
  refFromToken,
  refOfPresented,
  SessionToken,
  userPseudonymOf,
} from './token.js';
import type {
  Session,
  SessionAuditType,
  SessionEndedEvent,
  SessionInput,
  SessionsOptions,
  SessionValidationResult,
} from './types.js';

export type { SessionRepository } from './repository.js';
export { HANDLE_LENGTH, refFromHandle, refFromToken, SessionToken, TOKEN_LENGTH } from './token.js';
export type {
  JsonValue,
  Session,
  SessionAuditEvent,
  SessionAuditType,
  SessionEndedEvent,
  SessionInput,
  SessionsOptions,
  SessionValidationResult,
} from './types.js';

export class Sessions {
  private readonly limits: SessionLimits;
  private readonly touchIntervalMs: number;
  private readonly activity: ActivityBuffer;
  private readonly events: EndedSessionEvents;
  private readonly cache: LocalCache;
  /** Set in durable mode (a repository given). */
  private readonly durable: DurableSessions | undefined;

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
    const { repository } = options;
    this.activity = new ActivityBuffer(store, repository, flushIntervalMs);
    this.events = new EndedSessionEvents(store, (handle) => {
      this.cache.forget(handle);
    });
    this.cache = new LocalCache({
      store,
      events: this.events,
      ttlMs: toMs('sessions.localCacheTtl', options.localCacheTtl ?? '1s'),
      maxEntries: options.localCacheMaxEntries ?? 10_000,
      touchIntervalMs: this.touchIntervalMs,
    });
    this.durable = repository
      ? new DurableSessions({
          store,
          repository,
          limits: this.limits,
          touchIntervalMs: this.touchIntervalMs,
          events: this.events,
          openStoredPayload: (ref, stored) => this.openStoredPayload(ref, stored),
          storeCall: (call) => this.storeCall(call),
        })
      : undefined;
  }

  /**
   * Calls `listener` whenever a session ends on any instance sharing the store (revoked, evicted
   * for the limit, rotated), within milliseconds, over pub/sub (sharded on Cluster). Resolves
   * once listening; the returned function stops it. Delivery is at most once: a listener that
   * was disconnected at that moment misses the event, and validation refuses the session anyway.
   */
  async onEnded(listener: (event: SessionEndedEvent) => void): Promise<() => Promise<void>> {
    return this.events.listen(listener);
  }

  /**
   * True while validations may be answered from the local cache: the instance listens to
   * ended-session events (it starts listening at its first validation). Readiness probes can
   * report it as the state of the pub/sub subscriber.
   */
  get localCacheActive(): boolean {
    return this.cache.active;
  }

  /** The user's pseudonym: the hash tag of their keys and the first part of their tokens and handles. */
  userPseudonym(userId: string): string {
    return userPseudonymOf(this.keyRing, userId);
  }

  /**
   * Creates a session. The token is returned once and never stored; keep it in a cookie or give
   * it to the API client. When the user is at the limit, their oldest sessions end here.
   */
  async create(input: SessionInput): Promise<{ token: string; session: Session }> {
    const payload = payloadFromInput(input);
    const uid = this.userPseudonym(input.userId);
    const { token, ref } = newToken(uid);
    const { session, evicted } = await this.storeCall(() =>
      this.store.createSession(ref, sealPayload(this.keyRing, ref, payload), this.limits),
    );
    if (this.durable) {
      try {
        await this.durable.repository.insert(uid, session);
        await this.durable.repository.end(uid, evicted, 'evicted-limit', Date.now());
      } catch (error) {
        // Not durable, so not created: take it back out of Redis.
        await this.store.revokeSession(ref, 'revoked', this.limits.reasonTtlMs).catch(() => undefined);
        throw error;
      }
    }
    this.audit('session.created', input.userId, ref);
    for (const tokenHash of evicted) {
      this.cache.forget(uid + tokenHash);
      this.audit('session.evicted', input.userId, { uid, tokenHash });
    }
    await this.discard(uid, evicted);
    await this.events.announce(
      evicted.map((tokenHash) => uid + tokenHash),
      'evicted-limit',
    );
    return { token, session: presentSession(ref, session, payload) };
  }

  /** The live session of `token`, or null (unknown, expired, ended or malformed: never throws for those). */
  validate(token: unknown): Promise<Session | null> {
    return this.validateWithReason(token).then((result) => result.session);
  }

  /**
   * The token read once (hashed), or null when it cannot be a session token: pass it to
   * `validateWithReason` and `ownerOf` instead of the string to hash it only once.
   */
  readToken(token: unknown): SessionToken | null {
    const ref = refFromToken(token);
    return ref ? new SessionToken(ref) : null;
  }

  /** Like `validate`, and says why a session is gone when the store knows. */
  async validateWithReason(token: unknown): Promise<SessionValidationResult> {
    const ref = refOfPresented(token);
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
    if (this.cache.enabled) {
      const cached = this.fromCache(key);
      if (cached) return { session: cached, reason: null };
      this.cache.startListening();
    }
    const pending = this.activity.pendingOf(key) + 1;
    const generation = this.cache.generation;
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
      if (this.durable && error instanceof StoreUnavailableError) return this.durable.validateFromSql(ref);
      throw error;
    }
    if (result.session === null) {
      this.activity.forget(key);
      this.cache.forgetOwner(key);
      // Audited once: by the validation that ended the expired session, not by every later
      // presentation of its token (a client retrying with it would flood the audit trail).
      if (result.expiredNow && (result.reason === 'expired-idle' || result.reason === 'expired-absolute')) {
        const payload = result.expired ? this.openStoredPayload(ref, result.expired) : null;
        this.audit(`session.${result.reason}`, payload?.u ?? null, ref);
      }
      if (result.reason === null && this.durable) return this.durable.refillFromSql(ref);
      return { session: null, reason: result.reason };
    }
    const payload = this.openStoredPayload(ref, result.session);
    if (!payload) return { session: null, reason: null };
    let stored = result.session;
    if (result.touched) {
      this.activity.forget(key);
      this.durable?.repository.touch(ref.uid, ref.tokenHash, result.nowMs, pending).catch(() => undefined);
    } else {
      this.activity.set(key, { ref, pending, lastSeenAtMs: result.nowMs });
      stored = { ...stored, lastSeenAtMs: result.nowMs, requestCount: stored.requestCount + pending };
      this.activity.flushWhenFull();
    }
    const session = presentSession(ref, stored, payload);
    this.cache.remember(generation, ref, session, result.session, result.nowMs);
    return { session, reason: null };
  }

  /** A cached session still within every bound, with this request counted; else null. */
  private fromCache(key: string): Session | null {
    const now = Date.now();
    const cached = this.cache.validation(key, now);
    if (!cached) return null;
    const pending = this.activity.pendingOf(key) + 1;
    this.activity.set(key, { ref: cached.ref, pending, lastSeenAtMs: now });
    return { ...cached.session, lastSeenAtMs: now, requestCount: cached.storedRequestCount + pending };
  }

  /**
   * The user of the session `token` names, when this instance has validated that session before
   * and has not seen it end; else undefined. Not a validation: the session may have ended since.
   * It lets a caller start work keyed by the user (a per-user rate-limit charge) together with
   * the validation instead of after it. A token this instance never validated (a forged one)
   * gets undefined.
   */
  ownerOf(token: unknown): string | undefined {
    const ref = refOfPresented(token);
    return ref ? this.cache.owner(handleOf(ref)) : undefined;
  }

  /** A user's live sessions, oldest first (handles, never tokens). */
  async list(userId: string): Promise<Session[]> {
    const uid = this.userPseudonym(userId);
    let stored: readonly StoredSession[];
    try {
      stored = await this.storeCall(() => this.store.listSessions(uid, this.limits));
    } catch (error) {
      if (!(this.durable && error instanceof StoreUnavailableError)) throw error;
      stored = await this.durable.listLive(uid);
    }
    return stored.flatMap((session) => {
      const ref = { uid, tokenHash: session.tokenHash };
      const payload = this.openStoredPayload(ref, session);
      if (!payload) return [];
      const activity = this.activity.get(handleOf(ref));
      const current = activity
        ? {
            ...session,
            lastSeenAtMs: Math.max(session.lastSeenAtMs, activity.lastSeenAtMs),
            requestCount: session.requestCount + activity.pending,
          }
        : session;
      return [presentSession(ref, current, payload)];
    });
  }

  /**
   * Ends the session named by `handle`. With `userId`, only if the session is that user's (so a
   * user can never end someone else's). `cause` (e.g. `signout`) reaches every `onEnded`
   * listener with the event. True when a live session was ended.
   */
  async revoke(handle: string, options: { userId?: string; cause?: string } = {}): Promise<boolean> {
    if (options.cause !== undefined && !isRevocationCause(options.cause)) {
      throw new TypeError('cause must be a lower-case word of up to 32 letters, digits and dashes');
    }
    const ref = refFromHandle(handle);
    if (!ref) return false;
    if (options.userId !== undefined && this.userPseudonym(options.userId) !== ref.uid) return false;
    this.activity.forget(handle);
    this.cache.forget(handle);
    let ended = false;
    let session: StoredSession | null = null;
    try {
      ({ ended, session } = await this.storeCall(() =>
        this.store.revokeSession(ref, 'revoked', this.limits.reasonTtlMs),
      ));
    } catch (error) {
      // Durable mode: SQL keeps the revocation, and Redis gets it when it is back (reconcile).
      if (!(this.durable && error instanceof StoreUnavailableError)) throw error;
    }
    if (this.durable) {
      const endedInSql = await this.durable.repository.end(ref.uid, [ref.tokenHash], 'revoked', Date.now());
      ended ||= endedInSql.length > 0;
    }
    if (ended) {
      const userId = options.userId ?? (session ? (this.openStoredPayload(ref, session)?.u ?? null) : null);
      this.audit('session.revoked', userId, ref);
      await this.events.announce([handle], 'revoked', options.cause);
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
    const payload = payloadOf(current);
    const { token: rotatedToken, ref: newRef } = newToken(ref.uid);
    this.activity.forget(handleOf(ref));
    this.cache.forget(handleOf(ref));
    const rotated = await this.storeCall(() =>
      this.store.rotateSession(
        ref,
        newRef.tokenHash,
        sealPayload(this.keyRing, newRef, payload),
        this.limits.reasonTtlMs,
      ),
    );
    if (!rotated) return null;
    if (this.durable) {
      await this.durable.repository.insert(ref.uid, rotated);
      await this.durable.repository.end(ref.uid, [ref.tokenHash], 'rotated', Date.now());
    }
    this.audit('session.rotated', current.userId, newRef);
    await this.events.announce([handleOf(ref)], 'rotated');
    return { token: rotatedToken, session: presentSession(newRef, rotated, payload) };
  }

  /** Writes buffered activity now (also runs on a timer, and at close). */
  async flush(): Promise<void> {
    return this.activity.flush();
  }

  /** Flushes buffered activity and stops the flush timer. */
  async close(): Promise<void> {
    this.activity.stopFlushTimer();
    this.cache.close();
    await Promise.allSettled([this.activity.flush(), this.events.close()]);
  }

  /**
   * Replays revocations that SQL recorded since `sinceMs` into the store: the ones made while
   * Redis was down, so a session revoked during an outage stays revoked once Redis is back.
   * Runs by itself when this instance sees the store answer again; returns how many it ended.
   */
  async reconcile(sinceMs: number): Promise<number> {
    if (!this.durable) return 0;
    return this.durable.reconcile(sinceMs);
  }

  /**
   * Runs a store call. In durable mode, the first call after this instance saw the store fail
   * first replays the revocations SQL recorded meanwhile (see DurableSessions.afterOutage).
   */
  private storeCall<T>(call: () => Promise<T>): Promise<T> {
    const run = () =>
      call().catch((error: unknown) => {
        if (error instanceof StoreUnavailableError) {
          this.durable?.storeFailed();
          // Events published meanwhile may be lost: nothing cached before the outage is trusted.
          this.cache.forgetValidations();
        }
        throw error;
      });
    return this.durable ? this.durable.afterOutage(run) : run();
  }

  private async revokeUser(userId: string, exceptTokenHash: string | null): Promise<number> {
    const uid = this.userPseudonym(userId);
    let ended: readonly string[] = [];
    try {
      ended = await this.storeCall(() =>
        this.store.revokeUserSessions(uid, exceptTokenHash, 'revoked', this.limits.reasonTtlMs),
      );
    } catch (error) {
      if (!(this.durable && error instanceof StoreUnavailableError)) throw error;
    }
    if (this.durable) {
      const endedInSql = await this.durable.repository.endAll(uid, exceptTokenHash, 'revoked', Date.now());
      ended = [...new Set([...ended, ...endedInSql])];
    }
    for (const tokenHash of ended) {
      this.activity.forget(uid + tokenHash);
      this.cache.forget(uid + tokenHash);
      this.audit('session.revoked', userId, { uid, tokenHash });
    }
    await this.discard(uid, ended);
    await this.events.announce(
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
   * The payload, or null when no key of the ring opens it (a key retired too early, or
   * tampering). The last payload opened per session is kept with its sealed bytes: when the
   * store returns the very same bytes (authenticated the first time), decrypting them again
   * would give the same result. This saves work only; validity is still the store's answer.
   */
  private openStoredPayload(ref: SessionRef, stored: StoredSession): Payload | null {
    const handle = handleOf(ref);
    const known = this.cache.openedPayload(handle, stored.payload);
    if (known) return known;
    const payload = openPayload(this.keyRing, handle, stored.payload);
    if (payload) this.cache.rememberOpened(handle, stored.payload, payload);
    return payload;
  }

  private audit(type: SessionAuditType, userId: string | null, ref: SessionRef): void {
    this.options.audit?.({ type, userId, sessionHash: this.keyRing.auditHash(handleOf(ref)) });
  }
}
