/**
 * RedisStore: the store contract (../store.ts) on Redis standalone, Sentinel or Cluster through
 * node-redis. It holds one connection (./connection.ts) and hands each operation to its
 * primitive's operations file (./sessions.ts, ./locks.ts, ./rate-limits.ts, ./markers.ts,
 * ./idempotency.ts), where its script (one per operation, of the same name:
 * packages/gatehouse/src/lua/) is called.
 */
import type { IdempotencyBegin } from '../idempotency-store.js';
import type { KeySpace } from '../keys.js';
import type { LockAcquireResult, LockExtendResult } from '../lock-store.js';
import type { MarkerArea, MarkerMode } from '../marker-store.js';
import type { RedisConnectionOptions } from '../options.js';
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
import { RedisConnection, type RedisConnectionSettings } from './connection.js';
import { unexpectedReply } from './errors.js';
import { RedisIdempotencyOperations } from './idempotency.js';
import { RedisLockOperations } from './locks.js';
import { RedisMarkerOperations } from './markers.js';
import { RedisRateLimitOperations } from './rate-limits.js';
import * as lua from './scripts.generated.js';
import { RedisSessionOperations } from './sessions.js';

export type RedisStoreOptions = RedisConnectionSettings;

export class RedisStore implements Store {
  readonly mode: RedisConnectionOptions['topology'];
  readonly keys: KeySpace;
  private readonly connection: RedisConnection;
  private readonly sessions: RedisSessionOperations;
  private readonly locks: RedisLockOperations;
  private readonly rateLimits: RedisRateLimitOperations;
  private readonly markers: RedisMarkerOperations;
  private readonly idempotency: RedisIdempotencyOperations;

  constructor(options: RedisStoreOptions) {
    this.connection = new RedisConnection(options);
    this.mode = this.connection.mode;
    this.keys = this.connection.keys;
    this.sessions = new RedisSessionOperations(this.connection);
    this.locks = new RedisLockOperations(this.connection);
    this.rateLimits = new RedisRateLimitOperations(this.connection);
    this.markers = new RedisMarkerOperations(this.connection);
    this.idempotency = new RedisIdempotencyOperations(this.connection);
  }

  // The connection.

  isReady(): boolean {
    return this.connection.isReady();
  }

  waitUntilReady(timeoutMs: number): Promise<void> {
    return this.connection.waitUntilReady(timeoutMs);
  }

  async probeReadWrite(probeId: string, value: string, ttlMs: number): Promise<ProbeResult> {
    assertTtlMs(ttlMs);
    const reply = await this.connection.runScript(
      lua.probeReadWrite,
      [this.keys.key('health', 'probe', probeId)],
      [value, String(ttlMs)],
    );
    if (!Array.isArray(reply) || reply.length !== 2) throw unexpectedReply(lua.probeReadWrite, reply);
    const [readBack, serverTimeMs] = reply as unknown[];
    return { value: String(readBack), serverTimeMs: Number(serverTimeMs) };
  }

  health(): Promise<StoreHealth> {
    return this.connection.health();
  }

  /**
   * Calls waiting on Redis, and how many of them are past their deadline: bounded while Redis
   * stalls (see ./deadlines.ts), for monitoring and for the fault tests.
   */
  pendingCalls(): { readonly inFlight: number; readonly overdue: number } {
    return this.connection.pendingCalls();
  }

  close(): Promise<void> {
    return this.connection.close();
  }

  publish(channel: string, message: string): Promise<void> {
    return this.connection.publish(channel, message);
  }

  subscribe(channel: string, listener: (message: string) => void): Promise<() => Promise<void>> {
    return this.connection.subscribe(channel, listener);
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
