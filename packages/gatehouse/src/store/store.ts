/**
 * The store seam: every atomic operation the primitives need, as one interface with two
 * implementations, RedisStore (Lua scripts on standalone, Sentinel or Cluster) and MemoryStore
 * (the same semantics in one process). It is deliberately not a generic key-value API: each
 * method is one atomic step with its keys, TTLs and reply defined in one place.
 *
 * Every method either returns its documented result or throws a store error from the catalogue
 * (StoreUnavailableError, StorePermissionError, StoreCommandError). Primitives add their
 * operations here in their own issues, with cases in the shared store suite.
 */
import type { KeySpace } from './keys.js';
import type { RedisTopology } from './options.js';

export type StoreMode = 'memory' | RedisTopology;

export interface ProbeResult {
  /** The value read back right after writing it. */
  readonly value: string;
  /** The store's clock (Redis `TIME`), in milliseconds since the epoch. */
  readonly serverTimeMs: number;
}

/** Facts from `INFO`, where the ACL user may run it. */
export interface ServerInfo {
  readonly version: string;
  readonly role: string;
  readonly uptimeSeconds: number;
  readonly usedMemoryBytes: number;
  /** 0 means no limit. */
  readonly maxMemoryBytes: number;
  readonly maxMemoryPolicy: string;
  readonly connectedClients: number;
  readonly keyspaceHits: number;
  readonly keyspaceMisses: number;
  readonly evictedKeys: number;
}

export interface StoreNodeHealth {
  /** `host:port` of the node (a primary). */
  readonly address: string;
  readonly status: 'up' | 'down';
  /** Round trip of a PING in milliseconds, when it answered. */
  readonly latencyMs: number | null;
  /**
   * Server facts; `'not-permitted'` when the ACL user may not run INFO (it is in `@dangerous`),
   * which is a deliberate least-privilege setup, not an error; `'unavailable'` when the node did not answer.
   */
  readonly info: ServerInfo | 'not-permitted' | 'unavailable';
}

export interface StoreHealth {
  /** `up`: every node answered; `degraded`: some did; `down`: none did. */
  readonly status: 'up' | 'degraded' | 'down';
  readonly mode: StoreMode;
  /** The slowest node's PING round trip, or null when none answered. */
  readonly latencyMs: number | null;
  readonly nodes: readonly StoreNodeHealth[];
}

/** Why a session ended, when the store knows. */
export type SessionEndReason = 'expired-idle' | 'expired-absolute' | 'revoked' | 'evicted-limit' | 'rotated';

export const SESSION_END_REASONS: readonly SessionEndReason[] = [
  'expired-idle',
  'expired-absolute',
  'revoked',
  'evicted-limit',
  'rotated',
];

/** Where a session lives: its user's pseudonym (the hash tag) and the hash of its token. */
export interface SessionRef {
  readonly uid: string;
  readonly tokenHash: string;
}

/** A session as stored: timestamps on the store's clock, the payload still sealed. */
export interface StoredSession {
  readonly tokenHash: string;
  readonly createdAtMs: number;
  readonly lastSeenAtMs: number;
  readonly idleTimeoutMs: number;
  readonly absoluteExpiresAtMs: number;
  readonly requestCount: number;
  readonly payload: Buffer;
}

export interface SessionLimits {
  readonly idleTimeoutMs: number;
  readonly absoluteTimeoutMs: number;
  readonly maxPerUser: number;
  /** How long the reason a session ended is kept for its device. */
  readonly reasonTtlMs: number;
}

export interface SessionValidateOptions {
  /** Write lastSeenAt at most this often. */
  readonly touchIntervalMs: number;
  /** Requests counted in this process since its last write, this one included. */
  readonly pendingCount: number;
  /** Tells an absolute expiry from an idle one once the session's key has expired. */
  readonly absoluteTimeoutMs: number;
  readonly reasonTtlMs: number;
}

export type SessionValidation =
  | { readonly session: StoredSession; readonly touched: boolean; readonly nowMs: number }
  | {
      readonly session: null;
      readonly reason: SessionEndReason | null;
      /** The session as it was, when it expired during this very validation. */
      readonly expired?: StoredSession;
    };

/** Key areas of the small single-key markers (nonces, CSRF token records, revocations). */
export type MarkerArea = 'nonce' | 'csrf' | 'revoke';

/** `if-new`: only when absent (SET NX). `if-greater`: keep the larger number (never lower it). */
export type MarkerMode = 'always' | 'if-new' | 'if-greater';

export type IdempotencyBegin =
  | { readonly state: 'started' | 'in-progress' | 'mismatch' }
  | { readonly state: 'replay'; readonly response: Buffer };

/** One GCRA bucket to check: its key id, and the policy in GCRA terms (integer ms). */
export interface RateLimitRule {
  /** `<policy>:<subject HMAC>`; all rate-limit keys share one hash tag so any set checks atomically. */
  readonly id: string;
  /** period / limit. */
  readonly intervalMs: number;
  /** (limit + burst - 1) * interval. */
  readonly toleranceMs: number;
}

export interface RateLimitState {
  /** Requests that may still come at once. */
  readonly remaining: number;
  /** Until the bucket is full again. */
  readonly resetMs: number;
  /** Until this bucket admits a request (0 when it does now). */
  readonly retryAfterMs: number;
}

/** A lock or semaphore acquire in store terms. */
export type LockAcquireResult =
  | { readonly acquired: true; readonly fencingToken: number }
  | {
      readonly acquired: false;
      /** Until the lock (or the first semaphore place) expires, unless renewed. */
      readonly retryAfterMs: number;
      /** The holder's label for a lock; null when none was given, and for semaphores. */
      readonly holder: string | null;
      /** How many hold it: 1 for a lock, the places taken for a semaphore. */
      readonly holders: number;
    };

export type LockExtendResult =
  { readonly extended: true; readonly fencingToken: number } | { readonly extended: false };

/**
 * How long a resource's last fencing token is kept beyond its lock's TTL. Tokens also follow the
 * store's clock, so a lost key costs nothing unless that clock steps back by more than this.
 */
export const FENCE_TTL_EXTRA_MS = 60 * 60 * 1000;

/** Holder labels: short, no spaces, nothing that looks like an email. */
export const LOCK_HOLDER_PATTERN = /^[A-Za-z0-9._:-]{0,64}$/;

export interface Store {
  readonly mode: StoreMode;
  readonly keys: KeySpace;

  /** True while commands can be sent (connected and not in the middle of a reconnect). */
  isReady(): boolean;

  /**
   * Resolves once the store has connected for the first time; rejects with
   * StoreUnavailableError after `timeoutMs`. The connection attempt goes on in the background
   * either way: start-up may wait on this, a request never should.
   */
  waitUntilReady(timeoutMs: number): Promise<void>;

  /** Writes `value` under the probe key for `ttlMs`, reads it back and reports the server clock. */
  probeReadWrite(probeId: string, value: string, ttlMs: number): Promise<ProbeResult>;

  /**
   * Stores a new session, first forgetting the user's expired sessions, then ending the oldest
   * beyond `maxPerUser` (reason `evicted-limit`), all in one atomic step.
   */
  sessionCreate(
    ref: SessionRef,
    payload: Buffer,
    limits: SessionLimits,
  ): Promise<{ readonly session: StoredSession; readonly evicted: readonly string[] }>;

  /**
   * Checks a session against its deadlines and its user's index; when its last write is at
   * least `touchIntervalMs` old, writes lastSeenAt = now and adds `pendingCount` requests.
   */
  sessionValidate(ref: SessionRef, options: SessionValidateOptions): Promise<SessionValidation>;

  /** Writes buffered activity to a live session; false when it is gone. */
  sessionTouch(ref: SessionRef, addCount: number, lastSeenAtMs: number): Promise<boolean>;

  /** Ends one session; `ended` is true when it was live, `session` is what was stored when known. */
  sessionRevoke(
    ref: SessionRef,
    reason: SessionEndReason,
    reasonTtlMs: number,
  ): Promise<{ readonly ended: boolean; readonly session: StoredSession | null }>;

  /** Ends every session of a user but `exceptTokenHash`; returns the token hashes ended. */
  sessionRevokeAll(
    uid: string,
    exceptTokenHash: string | null,
    reason: SessionEndReason,
    reasonTtlMs: number,
  ): Promise<readonly string[]>;

  /**
   * Deletes the keys of sessions already ended (out of the index): the scripts that end many
   * sessions at once cannot name their keys, so the caller removes them right after.
   */
  sessionDiscard(uid: string, tokenHashes: readonly string[]): Promise<void>;

  /** A user's live sessions, oldest first (forgetting expired ones, keeping why they ended). */
  sessionList(uid: string, limits: SessionLimits): Promise<readonly StoredSession[]>;

  /**
   * Puts a session read from durable storage back (cache refill), unless the store knows it
   * ended or its deadline has passed; true when it is there now. Evicts nothing.
   */
  sessionRestore(ref: SessionRef, session: StoredSession, limits: SessionLimits): Promise<boolean>;

  /** Moves a live session to a new token hash with a new payload; null when it is not live. */
  sessionRotate(
    ref: SessionRef,
    newTokenHash: string,
    payload: Buffer,
    reasonTtlMs: number,
  ): Promise<StoredSession | null>;

  /**
   * Publishes on a channel of this key space (sharded pub/sub on Cluster). Delivery is at most
   * once to the subscribers connected at that moment; nothing is stored.
   */
  publish(channel: string, message: string): Promise<void>;

  /**
   * Subscribes to a channel of this key space; resolves once the subscription is active and
   * returns the function that ends it. A subscription survives reconnects (and failovers).
   */
  subscribe(channel: string, listener: (message: string) => void): Promise<() => Promise<void>>;

  /**
   * Stores a small value under `<prefix>:<area>.v1:<id>` with its TTL, in one step; `id` must be a
   * hash, never a raw token. True when written (false when `mode` kept the existing value; with
   * `if-greater` the TTL is still extended).
   */
  setMarker(area: MarkerArea, id: string, value: string, ttlMs: number, mode: MarkerMode): Promise<boolean>;

  /** Reads and deletes a marker in one step: of concurrent callers, exactly one gets the value. */
  takeMarker(area: MarkerArea, id: string): Promise<string | null>;

  /** Reads a marker, or null. */
  getMarker(area: MarkerArea, id: string): Promise<string | null>;

  /**
   * Claims an idempotency record (`id` is a MAC of scope and key) for a body (`bodyMac`, 22
   * characters), or reports the first request's fate: running, a different body, or its response.
   */
  idempotencyBegin(id: string, bodyMac: string, inFlightTtlMs: number): Promise<IdempotencyBegin>;

  /** Stores the response of the claiming request; false when the claim is gone. */
  idempotencyComplete(id: string, bodyMac: string, response: Buffer, ttlMs: number): Promise<boolean>;

  /** Releases a running claim whose request failed; false when there was none. */
  idempotencyAbandon(id: string, bodyMac: string): Promise<boolean>;

  /**
   * GCRA over every rule at once on the store's clock: when all admit, all are charged; when one
   * refuses, none is. States come in the order of the rules.
   */
  rateLimitCheck(rules: readonly RateLimitRule[]): Promise<{
    readonly admitted: boolean;
    readonly nowMs: number;
    readonly states: readonly RateLimitState[];
  }>;

  /**
   * Takes the lock on `resourceId` (an HMAC of the resource name) for `ownerId` (a hash of the
   * owner token) unless it is held, and returns the resource's next fencing token.
   */
  lockAcquire(resourceId: string, ownerId: string, ttlMs: number, holder: string): Promise<LockAcquireResult>;

  /** Renews the lock to `ttlMs` from now, only for its owner. */
  lockExtend(resourceId: string, ownerId: string, ttlMs: number): Promise<LockExtendResult>;

  /** Frees the lock, only for its owner; false when it was not the owner's. */
  lockRelease(resourceId: string, ownerId: string): Promise<boolean>;

  /** Takes one of `limit` places on `resourceId` for `ownerId`, with the next fencing token. */
  semaphoreAcquire(
    resourceId: string,
    ownerId: string,
    limit: number,
    ttlMs: number,
  ): Promise<LockAcquireResult>;

  /** Renews the owner's live place to `ttlMs` from now; false when it holds none. */
  semaphoreExtend(resourceId: string, ownerId: string, ttlMs: number): Promise<boolean>;

  /** Gives up the owner's place; false when it held no live one. */
  semaphoreRelease(resourceId: string, ownerId: string): Promise<boolean>;

  /** PING latency and server facts per primary; never throws. */
  health(): Promise<StoreHealth>;

  /** Closes connections and stops reconnecting; idempotent. */
  close(): Promise<void>;
}

/** Checks a TTL argument (a programming error if wrong): every key gatehouse writes expires. */
export function assertTtlMs(ttlMs: number): void {
  if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0) {
    throw new RangeError(`ttlMs must be a positive integer of milliseconds, got ${String(ttlMs)}`);
  }
}

/** Checks rate-limit rules (a programming error if wrong) before they reach a store. */
export function assertRateLimitRules(rules: readonly RateLimitRule[]): void {
  if (rules.length === 0) throw new TypeError('rateLimitCheck needs at least one rule');
  for (const rule of rules) {
    if (
      !Number.isSafeInteger(rule.intervalMs) ||
      rule.intervalMs < 1 ||
      !Number.isSafeInteger(rule.toleranceMs) ||
      rule.toleranceMs < 0
    ) {
      throw new RangeError(
        `rate-limit rule ${rule.id}: intervalMs must be a positive integer and toleranceMs a non-negative one`,
      );
    }
  }
}

/**
 * A bucket's state from its TAT after the check, relative to now (`tatAfterMs` = TAT - now: the
 * charged TAT when admitted, the unchanged one when refused). Both stores derive it here, so
 * they answer alike.
 */
export function rateLimitState(rule: RateLimitRule, admitted: boolean, tatAfterMs: number): RateLimitState {
  const ahead = Math.max(0, tatAfterMs);
  return {
    remaining: Math.max(0, Math.floor((rule.toleranceMs + rule.intervalMs - ahead) / rule.intervalMs)),
    resetMs: ahead,
    retryAfterMs: admitted ? 0 : Math.max(0, ahead - rule.toleranceMs),
  };
}

/** Checks lock arguments (a programming error if wrong) before they reach a store. */
export function assertLockArguments(ttlMs: number, holder = '', limit = 1): void {
  assertTtlMs(ttlMs);
  if (!LOCK_HOLDER_PATTERN.test(holder)) {
    throw new TypeError('a lock holder label must be at most 64 of A-Z a-z 0-9 . _ : -');
  }
  if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError('a semaphore limit must be at least 1');
}
