/**
 * MemoryStore: the store contract (../store.ts) in one process, for development, tests and
 * single-instance deployments. Same semantics as RedisStore, including expiry: its data
 * (./state.ts) lives in one map of entries with TTLs, and each primitive's operations file does
 * in one synchronous step what its Lua script does on Redis.
 */
import type { IdempotencyBegin } from '../idempotency-store.js';
import type { KeySpace } from '../keys.js';
import type { LockAcquireResult, LockExtendResult } from '../lock-store.js';
import type { MarkerArea, MarkerMode } from '../marker-store.js';
import type { RateLimitCheck, RateLimitRule } from '../rate-limit-store.js';
import type {
  SessionEndReason,
  SessionLimits,
  SessionRef,
  SessionValidateOptions,
  SessionValidation,
  StoredSession,
} from '../session-store.js';
import type { ProbeResult, Store, StoreHealth } from '../store.js';
import { assertTtlMs } from '../ttl.js';
import { MemoryIdempotencyOperations } from './idempotency.js';
import { MemoryLockOperations } from './locks.js';
import { MemoryMarkerOperations } from './markers.js';
import { MemoryRateLimitOperations } from './rate-limits.js';
import { MemorySessionOperations } from './sessions.js';
import { MemoryState, type MemoryStoreOptions } from './state.js';

export type { MemoryStoreOptions } from './state.js';

export class MemoryStore implements Store {
  readonly mode = 'memory' as const;
  readonly keys: KeySpace;
  private readonly state: MemoryState;
  private readonly sessions: MemorySessionOperations;
  private readonly locks: MemoryLockOperations;
  private readonly rateLimits: MemoryRateLimitOperations;
  private readonly markers: MemoryMarkerOperations;
  private readonly idempotency: MemoryIdempotencyOperations;

  constructor(options: MemoryStoreOptions = {}) {
    this.state = new MemoryState(options);
    this.keys = this.state.keys;
    this.sessions = new MemorySessionOperations(this.state);
    this.locks = new MemoryLockOperations(this.state);
    this.rateLimits = new MemoryRateLimitOperations(this.state);
    this.markers = new MemoryMarkerOperations(this.state);
    this.idempotency = new MemoryIdempotencyOperations(this.state);
  }

  // The connection.

  isReady(): boolean {
    return this.state.isOpen();
  }

  waitUntilReady(_timeoutMs: number): Promise<void> {
    return Promise.resolve();
  }

  probeReadWrite(probeId: string, value: string, ttlMs: number): Promise<ProbeResult> {
    return this.state.operation(() => {
      assertTtlMs(ttlMs);
      const key = this.keys.key('health', 'probe', probeId);
      this.state.set(key, value, ttlMs);
      const readBack = this.state.get(key);
      return { value: typeof readBack === 'string' ? readBack : '', serverTimeMs: this.state.now() };
    });
  }

  health(): Promise<StoreHealth> {
    return Promise.resolve({ status: 'up', mode: 'memory', latencyMs: 0, nodes: [] });
  }

  close(): Promise<void> {
    return this.state.close();
  }

  publish(channel: string, message: string): Promise<void> {
    return this.state.publish(channel, message);
  }

  subscribe(channel: string, listener: (message: string) => void): Promise<() => Promise<void>> {
    return this.state.subscribe(channel, listener);
  }

  // For tests of the every-key-has-a-TTL rule and of what is stored in clear.

  /** Every live key with its value rendered as text (latin1 for binary). */
  snapshotValues(): Map<string, string> {
    return this.state.snapshotValues();
  }

  /** Live keys and their remaining TTL in ms. */
  snapshotTtls(): Map<string, number> {
    return this.state.snapshotTtls();
  }

  /** Entries held, expired or not (expired ones go at the next sweep). */
  entryCount(): number {
    return this.state.entryCount();
  }

  // Sessions.

  createSession(
    ref: SessionRef,
    payload: Buffer,
    limits: SessionLimits,
  ): Promise<{ session: StoredSession; evicted: string[] }> {
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
  ): Promise<{ ended: boolean; session: StoredSession | null }> {
    return this.sessions.revokeSession(ref, reason, reasonTtlMs);
  }

  revokeUserSessions(
    uid: string,
    exceptTokenHash: string | null,
    reason: SessionEndReason,
    reasonTtlMs: number,
  ): Promise<string[]> {
    return this.sessions.revokeUserSessions(uid, exceptTokenHash, reason, reasonTtlMs);
  }

  discardSessions(uid: string, tokenHashes: readonly string[]): Promise<void> {
    return this.sessions.discardSessions(uid, tokenHashes);
  }

  listSessions(uid: string, limits: SessionLimits): Promise<StoredSession[]> {
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

  checkRateLimits(rules: readonly RateLimitRule[]): Promise<RateLimitCheck> {
    return this.rateLimits.checkRateLimits(rules);
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
