/**
 * RedisStore: the store contract (../store.ts) on Redis standalone, Sentinel or Cluster through
 * node-redis. It holds one connection (./connection.ts) and hands each operation (through
 * ../operations-store.ts) to its
 * primitive's operations file (./sessions.ts, ./locks.ts, ./rate-limits.ts, ./markers.ts,
 * ./idempotency.ts), where its script (one per operation, of the same name:
 * packages/gatehouse/src/lua/) is called.
 */
import type { KeySpace } from '../keys.js';
import type { RedisConnectionOptions } from '../options.js';
import { OperationsStore } from '../operations-store.js';
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

export class RedisStore extends OperationsStore implements Store {
  readonly mode: RedisConnectionOptions['topology'];
  readonly keys: KeySpace;
  private readonly connection: RedisConnection;

  constructor(options: RedisStoreOptions) {
    const connection = new RedisConnection(options);
    super({
      sessions: new RedisSessionOperations(connection),
      locks: new RedisLockOperations(connection),
      rateLimits: new RedisRateLimitOperations(connection),
      markers: new RedisMarkerOperations(connection),
      idempotency: new RedisIdempotencyOperations(connection),
    });
    this.connection = connection;
    this.mode = connection.mode;
    this.keys = connection.keys;
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
}
