/**
 * The memory store's data: every entry with its TTL, checked on read and swept as writes come
 * in (no timers, so nothing keeps the process alive), and the pub/sub channels. The operations
 * files (./sessions.ts, ./locks.ts, ./rate-limits.ts, ./markers.ts, ./idempotency.ts) work on it
 * through `operation`, which makes each of them atomic as a Lua script is on Redis.
 */
import { StoreUnavailableError } from '../../errors.js';
import { KeySpace } from '../keys.js';
import { assertTtlMs } from '../ttl.js';

export interface MemoryStoreOptions {
  readonly keyPrefix?: string;
  /** Milliseconds since the epoch; inject a fake clock in tests. Default `Date.now`. */
  readonly clock?: () => number;
}

/** The value kinds the operations need, mirroring the Redis types they use. */
export type Value = string | Buffer | Map<string, number> | Map<string, string>;

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

export class MemoryState {
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

  /** The store's clock, in ms since the epoch. */
  now(): number {
    return this.clock();
  }

  isOpen(): boolean {
    return !this.closed;
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

  /**
   * Runs one operation synchronously (that is what makes it atomic in one process), hands back
   * its result or error as a promise as the Store contract promises, and checks afterwards that
   * it left no key without a TTL.
   */
  operation<T>(body: () => T): Promise<T> {
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

  get(key: string): Value | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAtMs <= this.clock()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  /** Remaining TTL in ms; -2 when the key does not exist, as PTTL answers. */
  pttl(key: string): number {
    const entry = this.entries.get(key);
    if (!entry || entry.expiresAtMs <= this.clock()) return -2;
    return entry.expiresAtMs === Infinity ? -1 : entry.expiresAtMs - this.clock();
  }

  /** Stores a value with its TTL: the only way a plain value is written. */
  set(key: string, value: string | Buffer, ttlMs: number): void {
    assertTtlMs(ttlMs);
    this.entries.set(key, { value, expiresAtMs: this.clock() + ttlMs });
  }

  /** Sets the TTL to `ttlMs` unless the key already lives longer (never shortens it). */
  extendTtl(key: string, ttlMs: number): void {
    assertTtlMs(ttlMs);
    const entry = this.entries.get(key);
    if (entry)
      entry.expiresAtMs = Math.max(
        entry.expiresAtMs === Infinity ? 0 : entry.expiresAtMs,
        this.clock() + ttlMs,
      );
  }

  /** The string at `key`, or '' when there is none. */
  text(key: string): string {
    const value = this.get(key);
    return typeof value === 'string' ? value : '';
  }

  /** Sets the TTL to exactly `ttlMs` from now, as PEXPIRE does (no-op on a missing key). */
  expire(key: string, ttlMs: number): void {
    assertTtlMs(ttlMs);
    const entry = this.entries.get(key);
    if (entry) entry.expiresAtMs = this.clock() + ttlMs;
  }

  /** The sorted set at `key`, created empty (and removed again when left empty) like Redis does. */
  zset(key: string): Map<string, number> {
    return this.structure(key, () => new Map<string, number>()) as Map<string, number>;
  }

  hash(key: string): Map<string, string> {
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

  /** Deletes a key, as DEL does. */
  delete(key: string): void {
    this.entries.delete(key);
  }

  private sweep(): void {
    this.writesSinceSweep = 0;
    const now = this.clock();
    for (const [key, entry] of this.entries) {
      if (entry.expiresAtMs <= now) this.entries.delete(key);
    }
  }
}
