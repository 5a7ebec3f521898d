/**
 * The primitives' operations of a Store, handed to each primitive's operations object: what
 * RedisStore (./redis/store.ts) and MemoryStore (./memory/store.ts) share. Each of them adds the
 * connection (readiness, the probe, health, pub/sub, close) and builds its five operations
 * objects over its own connection or state.
 */
import type { IdempotencyBegin, IdempotencyStore } from './idempotency-store.js';
import type { LockAcquireResult, LockExtendResult, LockStore } from './lock-store.js';
import type { MarkerArea, MarkerMode, MarkerStore } from './marker-store.js';
import type {
  RateLimitCheck,
  RateLimitCheckOptions,
  RateLimitRule,
  RateLimitStore,
} from './rate-limit-store.js';
import type {
  SessionEndReason,
  SessionLimits,
  SessionOperations,
  SessionRef,
  SessionValidateOptions,
  SessionValidation,
  StoredSession,
} from './session-store.js';

export interface StoreOperations {
  readonly sessions: SessionOperations;
  readonly locks: LockStore;
  readonly rateLimits: Omit<RateLimitStore, 'isReady'>;
  readonly markers: MarkerStore;
  readonly idempotency: IdempotencyStore;
}

export abstract class OperationsStore {
  private readonly sessions: SessionOperations;
  private readonly locks: LockStore;
  private readonly rateLimits: Omit<RateLimitStore, 'isReady'>;
  private readonly markers: MarkerStore;
  private readonly idempotency: IdempotencyStore;

  protected constructor(operations: StoreOperations) {
    this.sessions = operations.sessions;
    this.locks = operations.locks;
    this.rateLimits = operations.rateLimits;
    this.markers = operations.markers;
    this.idempotency = operations.idempotency;
  }

  // Sessions.

  createSession(
    ref: SessionRef,
    payload: Buffer,
    limits: SessionLimits,
  ): Promise<{ readonly session: StoredSession; readonly evicted: readonly string[] }> {
    return this.sessions.createSession(ref, payload, limits);
  }

  validateSession(ref: SessionRef, options: SessionValidateOptions): Promise<SessionValidation> {
    return this.sessions.validateSession(ref, options);
  }

  touchSession(ref: SessionRef, addCount: number, lastSeenAtMs: number): Promise<boolean> {
    return this.sessions.touchSession(ref, addCount, lastSeenAtMs);
  }

  revokeSession(
    ref: SessionRef,
    reason: SessionEndReason,
    reasonTtlMs: number,
  ): Promise<{ readonly ended: boolean; readonly session: StoredSession | null }> {
    return this.sessions.revokeSession(ref, reason, reasonTtlMs);
  }

  revokeUserSessions(
    uid: string,
    exceptTokenHash: string | null,
    reason: SessionEndReason,
    reasonTtlMs: number,
  ): Promise<readonly string[]> {
    return this.sessions.revokeUserSessions(uid, exceptTokenHash, reason, reasonTtlMs);
  }

  discardSessions(uid: string, tokenHashes: readonly string[]): Promise<void> {
    return this.sessions.discardSessions(uid, tokenHashes);
  }

  listSessions(uid: string, limits: SessionLimits): Promise<readonly StoredSession[]> {
    return this.sessions.listSessions(uid, limits);
  }

  restoreSession(ref: SessionRef, session: StoredSession, limits: SessionLimits): Promise<boolean> {
    return this.sessions.restoreSession(ref, session, limits);
  }

  rotateSession(
    ref: SessionRef,
    newTokenHash: string,
    payload: Buffer,
    reasonTtlMs: number,
  ): Promise<StoredSession | null> {
    return this.sessions.rotateSession(ref, newTokenHash, payload, reasonTtlMs);
  }

  // Markers.

  setMarker(area: MarkerArea, id: string, value: string, ttlMs: number, mode: MarkerMode): Promise<boolean> {
    return this.markers.setMarker(area, id, value, ttlMs, mode);
  }

  takeMarker(area: MarkerArea, id: string): Promise<string | null> {
    return this.markers.takeMarker(area, id);
  }

  getMarker(area: MarkerArea, id: string): Promise<string | null> {
    return this.markers.getMarker(area, id);
  }

  // Idempotency records.

  beginIdempotent(id: string, bodyMac: string, inFlightTtlMs: number): Promise<IdempotencyBegin> {
    return this.idempotency.beginIdempotent(id, bodyMac, inFlightTtlMs);
  }

  completeIdempotent(id: string, bodyMac: string, response: Buffer, ttlMs: number): Promise<boolean> {
    return this.idempotency.completeIdempotent(id, bodyMac, response, ttlMs);
  }

  abandonIdempotent(id: string, bodyMac: string): Promise<boolean> {
    return this.idempotency.abandonIdempotent(id, bodyMac);
  }

  // Rate limits.

  checkRateLimits(rules: readonly RateLimitRule[], options?: RateLimitCheckOptions): Promise<RateLimitCheck> {
    return this.rateLimits.checkRateLimits(rules, options);
  }

  // Locks and semaphores.

  acquireLock(
    resourceId: string,
    ownerId: string,
    ttlMs: number,
    holder: string,
  ): Promise<LockAcquireResult> {
    return this.locks.acquireLock(resourceId, ownerId, ttlMs, holder);
  }

  extendLock(resourceId: string, ownerId: string, ttlMs: number): Promise<LockExtendResult> {
    return this.locks.extendLock(resourceId, ownerId, ttlMs);
  }

  releaseLock(resourceId: string, ownerId: string): Promise<boolean> {
    return this.locks.releaseLock(resourceId, ownerId);
  }

  acquireSemaphore(
    resourceId: string,
    ownerId: string,
    limit: number,
    ttlMs: number,
  ): Promise<LockAcquireResult> {
    return this.locks.acquireSemaphore(resourceId, ownerId, limit, ttlMs);
  }

  extendSemaphore(resourceId: string, ownerId: string, ttlMs: number): Promise<boolean> {
    return this.locks.extendSemaphore(resourceId, ownerId, ttlMs);
  }

  releaseSemaphore(resourceId: string, ownerId: string): Promise<boolean> {
    return this.locks.releaseSemaphore(resourceId, ownerId);
  }
}
