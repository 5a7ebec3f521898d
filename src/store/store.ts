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
