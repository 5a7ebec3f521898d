/**
 * The store seam: every atomic operation the primitives need, with two implementations (their
 * shared delegation to the operations objects: ./operations-store.ts),
 * RedisStore (./redis/store.ts: Lua scripts on standalone, Sentinel or Cluster) and MemoryStore
 * (./memory/store.ts: the same semantics in one process). It is deliberately not a generic
 * key-value API: each method is one atomic step with its keys, TTLs and reply defined in one place.
 *
 * The interface comes in parts, one per primitive, so that each primitive depends only on what it
 * uses: sessions (./session-store.ts), locks (./lock-store.ts), rate limits
 * (./rate-limit-store.ts), markers (./marker-store.ts) and idempotency records
 * (./idempotency-store.ts); this file adds the connection itself. A new primitive adds its part
 * beside them, an operations file per store (./redis/, ./memory/), and cases in the shared store
 * suite (packages/gatehouse/test/contracts/store.ts).
 *
 * Every method either returns its documented result or throws a store error from the catalogue
 * (StoreUnavailableError, StorePermissionError, StoreCommandError).
 */
import type { IdempotencyStore } from './idempotency-store.js';
import type { KeySpace } from './keys.js';
import type { LockStore } from './lock-store.js';
import type { MarkerStore } from './marker-store.js';
import type { RedisTopology } from './options.js';
import type { RateLimitStore } from './rate-limit-store.js';
import type { SessionStore } from './session-store.js';

export type * from './idempotency-store.js';
export type * from './lock-store.js';
export type * from './marker-store.js';
export type * from './rate-limit-store.js';
export type * from './session-store.js';
export { FENCE_TTL_EXTRA_MS, LOCK_HOLDER_PATTERN, assertLockArguments } from './lock-store.js';
export { assertRateLimitRules, rateLimitState } from './rate-limit-store.js';
export { SESSION_END_REASONS } from './session-store.js';
export { assertTtlMs } from './ttl.js';

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

/** The connection: readiness, health, the probe, and closing. */
export interface StoreConnection {
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

  /** PING latency and server facts per primary; never throws. */
  health(): Promise<StoreHealth>;

  /** Closes connections and stops reconnecting; idempotent. */
  close(): Promise<void>;
}

/** Everything a store does: the connection and every primitive's part. */
export interface Store
  extends StoreConnection, SessionStore, LockStore, RateLimitStore, MarkerStore, IdempotencyStore {
  readonly mode: StoreMode;
}
