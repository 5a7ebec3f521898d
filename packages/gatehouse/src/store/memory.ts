/**
 * MemoryStore: the store contract in one process, for development, tests and single-instance
 * deployments. Same semantics as RedisStore, including expiry: every entry has a TTL, checked on
 * read and swept as writes come in (no timers, so nothing keeps the process alive).
 */
import { StoreUnavailableError } from '../errors.js';
import { KeySpace } from './keys.js';
import {
  decodeSessionValue,
  encodeSessionValue,
  sessionKey,
  sessionKeys,
  userKeys,
  type SessionKeys,
} from './session-keys.js';
import {
  assertLockArguments,
  assertRateLimitRules,
  assertTtlMs,
  FENCE_TTL_EXTRA_MS,
  rateLimitState,
  type LockAcquireResult,
  type LockExtendResult,
  type IdempotencyBegin,
  type MarkerArea,
  type MarkerMode,
  type ProbeResult,
  type RateLimitRule,
  type RateLimitState,
  type SessionEndReason,
  type SessionLimits,
  type SessionRef,
  type SessionValidateOptions,
  type SessionValidation,
  type Store,
  type StoreHealth,
  type StoredSession,
} from './store.js';

export interface MemoryStoreOptions {
  readonly keyPrefix?: string;
  /** Milliseconds since the epoch; inject a fake clock in tests. Default `Date.now`. */
  readonly clock?: () => number;
}

/** The value kinds the operations need, mirroring the Redis types they use. */
type Value = string | Buffer | Map<string, number> | Map<string, string>;

interface Entry {
  value: Value;
  /** Infinity only for a structure created moments ago whose TTL the same operation sets. */
  expiresAtMs: number;
}

/**
 * Runs one operation synchronously (that is what makes it atomic in one process) and hands
 * back its result or error as a promise, as the Store contract promises: never a synchronous throw.
 */
function settle<T>(operation: () => T): Promise<T> {
  try {
    return Promise.resolve(operation());
  } catch (error) {
    return Promise.reject(error instanceof Error ? error : new Error(String(error)));
  }
}

/** Sweep expired entries after this many writes, so memory stays bounded without a timer. */
const SWEEP_EVERY_WRITES = 1000;

export class MemoryStore implements Store {
  readonly mode = 'memory' as const;
  readonly keys: KeySpace;
  private readonly clock: () => number;
  private readonly entries = new Map<string, Entry>();
  private writesSinceSweep = 0;
  private closed = false;
  /** Structures the current operation read or wrote, checked when it ends. */
  private readonly touchedStructures = new Set<string>();
  private readonly channels = new Map<string, Set<(message: string) => void>>();

  constructor(options: MemoryStoreOptions = {}) {
    this.keys = new KeySpace(options.keyPrefix);
    this.clock = options.clock ?? Date.now;
  }

  isReady(): boolean {
    return !this.closed;
  }

  waitUntilReady(_timeoutMs: number): Promise<void> {
    return Promise.resolve();
  }

  probeReadWrite(probeId: string, value: string, ttlMs: number): Promise<ProbeResult> {
    return this.operation(() => {
      assertTtlMs(ttlMs);
      const key = this.keys.key('health', 'probe', probeId);
      this.set(key, value, ttlMs);
      const readBack = this.get(key);
      return { value: typeof readBack === 'string' ? readBack : '', serverTimeMs: this.clock() };
    });
  }

  sessionCreate(
    ref: SessionRef,
    payload: Buffer,
    limits: SessionLimits,
  ): Promise<{ session: StoredSession; evicted: string[] }> {
    return this.operation(() => {
      const now = this.clock();
      const keys = sessionKeys(this.keys, ref);
      if (this.hash(keys.ended).size > 2 * limits.maxPerUser + 64) this.entries.delete(keys.ended);
      this.forgetExpired(keys, now, limits.absoluteTimeoutMs);
      const index = this.zset(keys.index);
      const deadlines = this.zset(keys.deadlines);
      const excess = index.size - limits.maxPerUser + 1;
      const evicted = excess > 0 ? sortedByScore(index).slice(0, excess) : [];
      for (const member of evicted) {
        index.delete(member);
        deadlines.delete(member);
        this.hash(keys.ended).set(member, 'evicted-limit');
      }
      if (this.get(keys.ended) !== undefined) this.extendTtl(keys.ended, limits.reasonTtlMs);
      const newest = sortedByScore(index).at(-1);
      const order = Math.max(now * 1000, newest === undefined ? 0 : (index.get(newest) ?? 0) + 1);
      const absoluteExpiresAtMs = now + limits.absoluteTimeoutMs;
      const deadline = Math.min(now + limits.idleTimeoutMs, absoluteExpiresAtMs);
      const session: StoredSession = {
        tokenHash: ref.tokenHash,
        createdAtMs: now,
        lastSeenAtMs: now,
        idleTimeoutMs: limits.idleTimeoutMs,
        absoluteExpiresAtMs,
        requestCount: 0,
        payload,
      };
      this.set(keys.session, encodeSessionValue(session), deadline - now);
      index.set(ref.tokenHash, order);
      deadlines.set(ref.tokenHash, deadline);
      this.extendTtl(keys.index, limits.absoluteTimeoutMs + limits.reasonTtlMs);
      this.extendTtl(keys.deadlines, limits.absoluteTimeoutMs + limits.reasonTtlMs);
      return { session, evicted };
    });
  }

  sessionValidate(ref: SessionRef, options: SessionValidateOptions): Promise<SessionValidation> {
    const { touchIntervalMs, pendingCount, reasonTtlMs, absoluteTimeoutMs } = options;
    return this.operation((): SessionValidation => {
      const now = this.clock();
      const keys = sessionKeys(this.keys, ref);
      const value = this.get(keys.session);
      const endedReason = () =>
        (this.hash(keys.ended).get(ref.tokenHash) as SessionEndReason | undefined) ?? null;
      const recordEnd = (reason: SessionEndReason) => {
        this.zset(keys.index).delete(ref.tokenHash);
        this.zset(keys.deadlines).delete(ref.tokenHash);
        this.hash(keys.ended).set(ref.tokenHash, reason);
        this.extendTtl(keys.ended, reasonTtlMs);
      };
      if (!Buffer.isBuffer(value)) {
        // Expired by TTL: the index still holds its deadline and creation time.
        const deadline = this.zset(keys.deadlines).get(ref.tokenHash);
        const order = this.zset(keys.index).get(ref.tokenHash);
        if (deadline !== undefined && order !== undefined && deadline <= now) {
          const reason = expiryReason(deadline, order, absoluteTimeoutMs);
          recordEnd(reason);
          return { session: null, reason };
        }
        return { session: null, reason: endedReason() };
      }
      if (!this.zset(keys.index).has(ref.tokenHash)) {
        this.entries.delete(keys.session);
        return { session: null, reason: endedReason() };
      }
      let session = decodeSessionValue(ref.tokenHash, value);
      const reason: SessionEndReason | null =
        now >= session.absoluteExpiresAtMs
          ? 'expired-absolute'
          : now >= session.lastSeenAtMs + session.idleTimeoutMs
            ? 'expired-idle'
            : null;
      if (reason) {
        this.entries.delete(keys.session);
        recordEnd(reason);
        return { session: null, reason, expired: session };
      }
      let touched = false;
      if (now - session.lastSeenAtMs >= touchIntervalMs) {
        const deadline = Math.min(now + session.idleTimeoutMs, session.absoluteExpiresAtMs);
        session = { ...session, lastSeenAtMs: now, requestCount: session.requestCount + pendingCount };
        this.set(keys.session, encodeSessionValue(session), deadline - now);
        this.zset(keys.deadlines).set(ref.tokenHash, deadline);
        touched = true;
      }
      return { session, touched, nowMs: now };
    });
  }

  sessionTouch(ref: SessionRef, addCount: number, lastSeenAtMs: number): Promise<boolean> {
    return this.operation(() => {
      const now = this.clock();
      const keys = sessionKeys(this.keys, ref);
      const value = this.get(keys.session);
      if (!Buffer.isBuffer(value) || !this.zset(keys.index).has(ref.tokenHash)) return false;
      const session = decodeSessionValue(ref.tokenHash, value);
      const seen = Math.min(Math.max(session.lastSeenAtMs, lastSeenAtMs), now);
      const deadline = Math.min(seen + session.idleTimeoutMs, session.absoluteExpiresAtMs);
      if (deadline <= now) return false;
      const touched = { ...session, lastSeenAtMs: seen, requestCount: session.requestCount + addCount };
      this.set(keys.session, encodeSessionValue(touched), deadline - now);
      this.zset(keys.deadlines).set(ref.tokenHash, deadline);
      return true;
    });
  }

  sessionRevoke(
    ref: SessionRef,
    reason: SessionEndReason,
    reasonTtlMs: number,
  ): Promise<{ ended: boolean; session: StoredSession | null }> {
    return this.operation(() => {
      const keys = sessionKeys(this.keys, ref);
      const value = this.get(keys.session);
      this.entries.delete(keys.session);
      const indexed = this.zset(keys.index).delete(ref.tokenHash);
      this.zset(keys.deadlines).delete(ref.tokenHash);
      if (indexed) {
        this.hash(keys.ended).set(ref.tokenHash, reason);
        this.extendTtl(keys.ended, reasonTtlMs);
      }
      return {
        ended: indexed,
        session: indexed && Buffer.isBuffer(value) ? decodeSessionValue(ref.tokenHash, value) : null,
      };
    });
  }

  sessionRevokeAll(
    uid: string,
    exceptTokenHash: string | null,
    reason: SessionEndReason,
    reasonTtlMs: number,
  ): Promise<string[]> {
    return this.operation(() => {
      const keys = userKeys(this.keys, uid);
      const index = this.zset(keys.index);
      const ended = sortedByScore(index).filter((member) => member !== exceptTokenHash);
      for (const member of ended) {
        index.delete(member);
        this.zset(keys.deadlines).delete(member);
        this.hash(keys.ended).set(member, reason);
      }
      if (ended.length > 0) this.extendTtl(keys.ended, reasonTtlMs);
      return ended;
    });
  }

  sessionDiscard(uid: string, tokenHashes: readonly string[]): Promise<void> {
    return this.operation(() => {
      for (const tokenHash of tokenHashes) this.entries.delete(sessionKey(this.keys, { uid, tokenHash }));
    });
  }

  /** Every live key with its value rendered as text (latin1 for binary), for tests that look for data in clear. */
  snapshotValues(): Map<string, string> {
    const values = new Map<string, string>();
    for (const key of this.entries.keys()) {
      const value = this.get(key);
      if (value === undefined) continue;
      values.set(
        key,
        value instanceof Map
          ? JSON.stringify([...value])
          : Buffer.isBuffer(value)
            ? value.toString('latin1')
            : value,
      );
    }
    return values;
  }

  sessionList(uid: string, limits: SessionLimits): Promise<StoredSession[]> {
    return this.operation(() => {
      const keys = userKeys(this.keys, uid);
      this.forgetExpired(keys, this.clock(), limits.absoluteTimeoutMs);
      if (this.get(keys.ended) !== undefined) this.extendTtl(keys.ended, limits.reasonTtlMs);
      return sortedByScore(this.zset(keys.index)).flatMap((tokenHash) => {
        const value = this.get(sessionKey(this.keys, { uid, tokenHash }));
        return Buffer.isBuffer(value) ? [decodeSessionValue(tokenHash, value)] : [];
      });
    });
  }

  sessionRestore(ref: SessionRef, session: StoredSession, limits: SessionLimits): Promise<boolean> {
    return this.operation(() => {
      const now = this.clock();
      const keys = sessionKeys(this.keys, ref);
      if (this.hash(keys.ended).has(ref.tokenHash)) return false;
      if (this.get(keys.session) !== undefined) return true;
      const deadline = Math.min(session.lastSeenAtMs + session.idleTimeoutMs, session.absoluteExpiresAtMs);
      if (deadline <= now) return false;
      this.set(keys.session, encodeSessionValue({ ...session, tokenHash: ref.tokenHash }), deadline - now);
      this.zset(keys.index).set(ref.tokenHash, session.createdAtMs * 1000);
      this.zset(keys.deadlines).set(ref.tokenHash, deadline);
      this.extendTtl(keys.index, limits.absoluteTimeoutMs + limits.reasonTtlMs);
      this.extendTtl(keys.deadlines, limits.absoluteTimeoutMs + limits.reasonTtlMs);
      return true;
    });
  }

  sessionRotate(
    ref: SessionRef,
    newTokenHash: string,
    payload: Buffer,
    reasonTtlMs: number,
  ): Promise<StoredSession | null> {
    return this.operation(() => {
      const now = this.clock();
      const keys = sessionKeys(this.keys, ref);
      const value = this.get(keys.session);
      const createdAt = this.zset(keys.index).get(ref.tokenHash);
      const ttl = this.pttl(keys.session);
      if (!Buffer.isBuffer(value) || createdAt === undefined || ttl <= 0) return null;
      const old = decodeSessionValue(ref.tokenHash, value);
      if (now >= old.absoluteExpiresAtMs || now >= old.lastSeenAtMs + old.idleTimeoutMs) return null;
      const rotated: StoredSession = { ...old, tokenHash: newTokenHash, payload };
      this.set(
        sessionKey(this.keys, { uid: ref.uid, tokenHash: newTokenHash }),
        encodeSessionValue(rotated),
        ttl,
      );
      this.zset(keys.index).set(newTokenHash, createdAt);
      this.zset(keys.deadlines).set(newTokenHash, this.zset(keys.deadlines).get(ref.tokenHash) ?? now + ttl);
      this.entries.delete(keys.session);
      this.zset(keys.index).delete(ref.tokenHash);
      this.zset(keys.deadlines).delete(ref.tokenHash);
      this.hash(keys.ended).set(ref.tokenHash, 'rotated');
      this.extendTtl(keys.ended, reasonTtlMs);
      return rotated;
    });
  }

  publish(channel: string, message: string): Promise<void> {
    return this.operation(() => {
      for (const listener of [...(this.channels.get(channel) ?? [])]) {
        // Like Redis, delivery does not wait for the listener, and its failure is not the publisher's.
        queueMicrotask(() => {
          listener(message);
        });
      }
    });
  }

  subscribe(channel: string, listener: (message: string) => void): Promise<() => Promise<void>> {
    return this.operation(() => {
      const listeners = this.channels.get(channel) ?? new Set();
      listeners.add(listener);
      this.channels.set(channel, listeners);
      return () => {
        listeners.delete(listener);
        return Promise.resolve();
      };
    });
  }

  setMarker(area: MarkerArea, id: string, value: string, ttlMs: number, mode: MarkerMode): Promise<boolean> {
    return this.operation(() => {
      assertTtlMs(ttlMs);
      const key = this.keys.key(area, id);
      const current = this.get(key);
      if (mode === 'if-new' && current !== undefined) return false;
      if (mode === 'if-greater' && typeof current === 'string' && Number(current) >= Number(value)) {
        this.extendTtl(key, ttlMs);
        return false;
      }
      this.set(key, value, ttlMs);
      return true;
    });
  }

  takeMarker(area: MarkerArea, id: string): Promise<string | null> {
    return this.operation(() => {
      const key = this.keys.key(area, id);
      const value = this.get(key);
      this.entries.delete(key);
      return typeof value === 'string' ? value : null;
    });
  }

  getMarker(area: MarkerArea, id: string): Promise<string | null> {
    return this.operation(() => {
      const value = this.get(this.keys.key(area, id));
      return typeof value === 'string' ? value : null;
    });
  }

  idempotencyBegin(id: string, bodyMac: string, inFlightTtlMs: number): Promise<IdempotencyBegin> {
    return this.operation((): IdempotencyBegin => {
      const key = this.keys.key('idem', id);
      const value = this.get(key);
      if (!Buffer.isBuffer(value)) {
        this.set(key, Buffer.from(`r${bodyMac}`), inFlightTtlMs);
        return { state: 'started' };
      }
      if (value.subarray(1, 23).toString() !== bodyMac) return { state: 'mismatch' };
      if (value[0] === 0x72) return { state: 'in-progress' };
      return { state: 'replay', response: Buffer.from(value.subarray(23)) };
    });
  }

  idempotencyComplete(id: string, bodyMac: string, response: Buffer, ttlMs: number): Promise<boolean> {
    return this.operation(() => {
      const key = this.keys.key('idem', id);
      const value = this.get(key);
      if (!Buffer.isBuffer(value) || value.toString('latin1') !== `r${bodyMac}`) return false;
      this.set(key, Buffer.concat([Buffer.from(`d${bodyMac}`), response]), ttlMs);
      return true;
    });
  }

  idempotencyAbandon(id: string, bodyMac: string): Promise<boolean> {
    return this.operation(() => {
      const key = this.keys.key('idem', id);
      const value = this.get(key);
      if (!Buffer.isBuffer(value) || value.toString('latin1') !== `r${bodyMac}`) return false;
      this.entries.delete(key);
      return true;
    });
  }

  rateLimitCheck(
    rules: readonly RateLimitRule[],
  ): Promise<{ admitted: boolean; nowMs: number; states: RateLimitState[] }> {
    return this.operation(() => {
      assertRateLimitRules(rules);
      const now = this.clock();
      const keys = rules.map((rule) => this.keys.tagged('rl', 'rl', rule.id));
      const tats = keys.map((key) => Math.max(Number(this.get(key) ?? now), now));
      const admitted = rules.every((rule, i) => (tats[i] ?? now) - now <= rule.toleranceMs);
      const states = rules.map((rule, i): RateLimitState => {
        let tat = tats[i] ?? now;
        if (admitted) {
          tat += rule.intervalMs;
          this.set(keys[i] ?? '', String(tat), tat - now);
        }
        return rateLimitState(rule, admitted, tat - now);
      });
      return { admitted, nowMs: now, states };
    });
  }

  lockAcquire(
    resourceId: string,
    ownerId: string,
    ttlMs: number,
    holder: string,
  ): Promise<LockAcquireResult> {
    return this.operation((): LockAcquireResult => {
      assertLockArguments(ttlMs, holder);
      const key = this.keys.tagged('lock', resourceId, 'm');
      const current = this.get(key);
      if (typeof current === 'string') {
        const label = current.split(' ')[2] ?? '';
        return {
          acquired: false,
          retryAfterMs: this.pttl(key),
          holder: label === '' ? null : label,
          holders: 1,
        };
      }
      const fencingToken = this.nextFencingToken(resourceId, ttlMs);
      this.set(key, `${ownerId} ${String(fencingToken)} ${holder}`, ttlMs);
      return { acquired: true, fencingToken };
    });
  }

  lockExtend(resourceId: string, ownerId: string, ttlMs: number): Promise<LockExtendResult> {
    return this.operation((): LockExtendResult => {
      assertTtlMs(ttlMs);
      const key = this.keys.tagged('lock', resourceId, 'm');
      const [owner, fence] = this.text(key).split(' ');
      if (owner !== ownerId) return { extended: false };
      this.expire(key, ttlMs);
      this.expire(this.keys.tagged('lock', resourceId, 'f'), ttlMs + FENCE_TTL_EXTRA_MS);
      return { extended: true, fencingToken: Number(fence) };
    });
  }

  lockRelease(resourceId: string, ownerId: string): Promise<boolean> {
    return this.operation(() => {
      const key = this.keys.tagged('lock', resourceId, 'm');
      if (this.text(key).split(' ')[0] !== ownerId) return false;
      this.entries.delete(key);
      return true;
    });
  }

  semaphoreAcquire(
    resourceId: string,
    ownerId: string,
    limit: number,
    ttlMs: number,
  ): Promise<LockAcquireResult> {
    return this.operation((): LockAcquireResult => {
      assertLockArguments(ttlMs, '', limit);
      const now = this.clock();
      const key = this.keys.tagged('lock', resourceId, 's');
      const places = this.zset(key);
      for (const [owner, expiry] of places) if (expiry <= now) places.delete(owner);
      if (places.size >= limit) {
        const first = Math.min(...places.values());
        return { acquired: false, retryAfterMs: first - now, holder: null, holders: places.size };
      }
      places.set(ownerId, now + ttlMs);
      this.expire(key, Math.max(...places.values()) - now);
      return { acquired: true, fencingToken: this.nextFencingToken(resourceId, ttlMs) };
    });
  }

  semaphoreExtend(resourceId: string, ownerId: string, ttlMs: number): Promise<boolean> {
    return this.operation(() => {
      assertTtlMs(ttlMs);
      const now = this.clock();
      const key = this.keys.tagged('lock', resourceId, 's');
      const places = this.zset(key);
      const expiry = places.get(ownerId);
      if (expiry === undefined) return false;
      if (expiry <= now) {
        places.delete(ownerId);
        return false;
      }
      places.set(ownerId, now + ttlMs);
      this.expire(key, Math.max(...places.values()) - now);
      this.expire(this.keys.tagged('lock', resourceId, 'f'), ttlMs + FENCE_TTL_EXTRA_MS);
      return true;
    });
  }

  semaphoreRelease(resourceId: string, ownerId: string): Promise<boolean> {
    return this.operation(() => {
      const places = this.zset(this.keys.tagged('lock', resourceId, 's'));
      const expiry = places.get(ownerId);
      if (expiry === undefined) return false;
      places.delete(ownerId);
      return expiry > this.clock();
    });
  }

  health(): Promise<StoreHealth> {
    return Promise.resolve({ status: 'up', mode: 'memory', latencyMs: 0, nodes: [] });
  }

  close(): Promise<void> {
    this.closed = true;
    this.entries.clear();
    this.channels.clear();
    return Promise.resolve();
  }

  /** Live keys and their remaining TTL in ms (for tests of the every-key-has-a-TTL rule). */
  snapshotTtls(): Map<string, number> {
    const ttls = new Map<string, number>();
    for (const key of this.entries.keys()) {
      const ttl = this.pttl(key);
      if (ttl !== -2) ttls.set(key, ttl);
    }
    return ttls;
  }

  /** Entries held, expired or not (expired ones go at the next sweep). */
  entryCount(): number {
    return this.entries.size;
  }

  /**
   * Runs one operation synchronously (that is what makes it atomic in one process), hands back
   * its result or error as a promise as the Store contract promises, and checks afterwards that
   * it left no key without a TTL.
   */
  private operation<T>(body: () => T): Promise<T> {
    return settle(() => {
      if (this.closed) throw new StoreUnavailableError('the store is closed');
      this.touchedStructures.clear();
      const result = body();
      // As in Redis, an emptied sorted set or hash is no key at all; any other must have a TTL.
      for (const key of this.touchedStructures) {
        const entry = this.entries.get(key);
        if (entry?.value instanceof Map && entry.value.size === 0) this.entries.delete(key);
        else if (entry?.expiresAtMs === Infinity)
          throw new Error(`memory store bug: ${key} was left without a TTL`);
      }
      if (++this.writesSinceSweep >= SWEEP_EVERY_WRITES) this.sweep();
      return result;
    });
  }

  private get(key: string): Value | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAtMs <= this.clock()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  /** Remaining TTL in ms; -2 when the key does not exist, as PTTL answers. */
  private pttl(key: string): number {
    const entry = this.entries.get(key);
    if (!entry || entry.expiresAtMs <= this.clock()) return -2;
    return entry.expiresAtMs === Infinity ? -1 : entry.expiresAtMs - this.clock();
  }

  /** Stores a value with its TTL: the only way a plain value is written. */
  private set(key: string, value: string | Buffer, ttlMs: number): void {
    assertTtlMs(ttlMs);
    this.entries.set(key, { value, expiresAtMs: this.clock() + ttlMs });
  }

  /** Sets the TTL to `ttlMs` unless the key already lives longer (never shortens it). */
  private extendTtl(key: string, ttlMs: number): void {
    assertTtlMs(ttlMs);
    const entry = this.entries.get(key);
    if (entry)
      entry.expiresAtMs = Math.max(
        entry.expiresAtMs === Infinity ? 0 : entry.expiresAtMs,
        this.clock() + ttlMs,
      );
  }

  /** The string at `key`, or '' when there is none. */
  private text(key: string): string {
    const value = this.get(key);
    return typeof value === 'string' ? value : '';
  }

  /** Sets the TTL to exactly `ttlMs` from now, as PEXPIRE does (no-op on a missing key). */
  private expire(key: string, ttlMs: number): void {
    assertTtlMs(ttlMs);
    const entry = this.entries.get(key);
    if (entry) entry.expiresAtMs = this.clock() + ttlMs;
  }

  /** max(last token + 1, now): grows with every holder, and with the clock when the key is gone. */
  private nextFencingToken(resourceId: string, ttlMs: number): number {
    const key = this.keys.tagged('lock', resourceId, 'f');
    const fencingToken = Math.max(Number(this.get(key) ?? 0) + 1, this.clock());
    this.set(key, String(fencingToken), ttlMs + FENCE_TTL_EXTRA_MS);
    return fencingToken;
  }

  /** The sorted set at `key`, created empty (and removed again when left empty) like Redis does. */
  private zset(key: string): Map<string, number> {
    return this.structure(key, () => new Map<string, number>()) as Map<string, number>;
  }

  private hash(key: string): Map<string, string> {
    return this.structure(key, () => new Map<string, string>()) as Map<string, string>;
  }

  private structure(key: string, create: () => Map<string, unknown>): Map<string, unknown> {
    this.touchedStructures.add(key);
    const existing = this.get(key);
    if (existing instanceof Map) return existing;
    const created = create();
    // A new structure has no TTL yet; the operation creating it sets one, or it is dropped below.
    this.entries.set(key, { value: created as Value, expiresAtMs: Infinity });
    return created;
  }

  /** Forgets sessions whose deadline passed, keeping which timeout it was. */
  private forgetExpired(keys: Omit<SessionKeys, 'session'>, now: number, absoluteTimeoutMs: number): void {
    const index = this.zset(keys.index);
    const deadlines = this.zset(keys.deadlines);
    for (const [member, deadline] of deadlines) {
      if (deadline <= now) {
        this.hash(keys.ended).set(member, expiryReason(deadline, index.get(member) ?? 0, absoluteTimeoutMs));
        deadlines.delete(member);
        index.delete(member);
      }
    }
  }

  private sweep(): void {
    this.writesSinceSweep = 0;
    const now = this.clock();
    for (const [key, entry] of this.entries) {
      if (entry.expiresAtMs <= now) this.entries.delete(key);
    }
  }
}

/** Which timeout ended a session, from its last deadline and its index score (creation in µs). */
function expiryReason(deadline: number, order: number, absoluteTimeoutMs: number): SessionEndReason {
  return deadline >= Math.floor(order / 1000) + absoluteTimeoutMs ? 'expired-absolute' : 'expired-idle';
}

/** Members ordered by score, then by member, as ZRANGE orders them. */
function sortedByScore(zset: Map<string, number>): string[] {
  return [...zset]
    .sort(([a, scoreA], [b, scoreB]) => scoreA - scoreB || (a < b ? -1 : a > b ? 1 : 0))
    .map(([member]) => member);
}
