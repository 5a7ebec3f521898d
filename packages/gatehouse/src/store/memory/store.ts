/**
 * MemoryStore: the store contract (../store.ts) in one process, for development, tests and
 * single-instance deployments. Same semantics as RedisStore, including expiry: its data
 * (./state.ts) lives in one map of entries with TTLs, and each primitive's operations file does
 * in one synchronous step what its Lua script does on Redis.
 */
import type { KeySpace } from '../keys.js';
import { OperationsStore } from '../operations-store.js';
import type { ProbeResult, Store, StoreHealth } from '../store.js';
import { assertTtlMs } from '../ttl.js';
import { MemoryIdempotencyOperations } from './idempotency.js';
import { MemoryLockOperations } from './locks.js';
import { MemoryMarkerOperations } from './markers.js';
import { MemoryRateLimitOperations } from './rate-limits.js';
import { MemorySessionOperations } from './sessions.js';
import { MemoryState, type MemoryStoreOptions } from './state.js';

export type { MemoryStoreOptions } from './state.js';

export class MemoryStore extends OperationsStore implements Store {
  readonly mode = 'memory' as const;
  readonly keys: KeySpace;
  private readonly state: MemoryState;

  constructor(options: MemoryStoreOptions = {}) {
    const state = new MemoryState(options);
    super({
      sessions: new MemorySessionOperations(state),
      locks: new MemoryLockOperations(state),
      rateLimits: new MemoryRateLimitOperations(state),
      markers: new MemoryMarkerOperations(state),
      idempotency: new MemoryIdempotencyOperations(state),
    });
    this.state = state;
    this.keys = state.keys;
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
}
