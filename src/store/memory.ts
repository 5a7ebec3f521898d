/**
 * MemoryStore: the store contract in one process, for development, tests and single-instance
 * deployments. Same semantics as RedisStore, including expiry: every entry has a TTL, checked on
 * read and swept as writes come in (no timers, so nothing keeps the process alive).
 */
import { StoreUnavailableError } from '../errors.js';
import { KeySpace } from './keys.js';
import { assertTtlMs, type ProbeResult, type Store, type StoreHealth } from './store.js';

export interface MemoryStoreOptions {
  readonly keyPrefix?: string;
  /** Milliseconds since the epoch; inject a fake clock in tests. Default `Date.now`. */
  readonly clock?: () => number;
}

interface Entry {
  value: string;
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
    return settle(() => {
      this.assertOpen();
      assertTtlMs(ttlMs);
      const key = this.keys.key('health', 'probe', probeId);
      this.write(key, value, ttlMs);
      return { value: this.read(key) ?? '', serverTimeMs: this.clock() };
    });
  }

  health(): Promise<StoreHealth> {
    return Promise.resolve({ status: 'up', mode: 'memory', latencyMs: 0, nodes: [] });
  }

  close(): Promise<void> {
    this.closed = true;
    this.entries.clear();
    return Promise.resolve();
  }

  /** Live keys and their remaining TTL in ms (for tests of the every-key-has-a-TTL rule). */
  snapshotTtls(): Map<string, number> {
    const now = this.clock();
    const ttls = new Map<string, number>();
    for (const [key, entry] of this.entries) {
      if (entry.expiresAtMs > now) ttls.set(key, entry.expiresAtMs - now);
    }
    return ttls;
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreUnavailableError('the store is closed');
  }

  /** Entries held, expired or not (expired ones go at the next sweep). */
  entryCount(): number {
    return this.entries.size;
  }

  private read(key: string): string | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAtMs <= this.clock()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  /** The only way an entry is stored: with a TTL. */
  private write(key: string, value: string, ttlMs: number): void {
    assertTtlMs(ttlMs);
    this.entries.set(key, { value, expiresAtMs: this.clock() + ttlMs });
    if (++this.writesSinceSweep >= SWEEP_EVERY_WRITES) this.sweep();
  }

  private sweep(): void {
    this.writesSinceSweep = 0;
    const now = this.clock();
    for (const [key, entry] of this.entries) {
      if (entry.expiresAtMs <= now) this.entries.delete(key);
    }
  }
}
