/** The locks' store operations on Redis (the contract: ../lock-store.ts), one script each. */
import { GroupedBatcher } from '../batcher.js';
import {
  assertLockArguments,
  FENCE_TTL_EXTRA_MS,
  type LockAcquireResult,
  type LockExtendResult,
  type LockStore,
} from '../lock-store.js';
import { keySlot } from '../slot.js';
import { assertTtlMs } from '../ttl.js';
import type { RedisConnection } from './connection.js';
import { unexpectedReply } from './errors.js';
import type { LuaScript } from './lua-script.js';
import * as lua from './scripts.generated.js';

/** Lock calls of one turn of the event loop share a script call per hash slot, up to this many. */
const LOCK_BATCH_CALLS = 64;

/** One lock operation as the batch scripts take it. */
interface LockCall {
  readonly resourceId: string;
  readonly ownerId: string;
  readonly ttlMs: number;
  readonly holder: string;
}

export class RedisLockOperations implements LockStore {
  private readonly lockAcquires = this.lockBatcher((calls) => this.acquireLockBatch(calls));
  private readonly lockExtends = this.lockBatcher((calls) => this.extendLockBatch(calls));
  private readonly lockReleases = this.lockBatcher((calls) => this.releaseLockBatch(calls));

  constructor(private readonly connection: RedisConnection) {}

  /**
   * Lock calls made in the same turn of the event loop go to Redis together, one script call per
   * operation and hash slot, which handles them one after the other: the results of one call
   * each, for a fraction of the cost per call.
   */
  async acquireLock(
    resourceId: string,
    ownerId: string,
    ttlMs: number,
    holder: string,
  ): Promise<LockAcquireResult> {
    assertLockArguments(ttlMs, holder);
    return this.addLockCall(this.lockAcquires, resourceId, ownerId, ttlMs, holder);
  }

  async extendLock(resourceId: string, ownerId: string, ttlMs: number): Promise<LockExtendResult> {
    assertTtlMs(ttlMs);
    return this.addLockCall(this.lockExtends, resourceId, ownerId, ttlMs, '');
  }

  releaseLock(resourceId: string, ownerId: string): Promise<boolean> {
    return this.addLockCall(this.lockReleases, resourceId, ownerId, 1, '');
  }

  private addLockCall<Out>(
    batcher: GroupedBatcher<LockCall, Out>,
    resourceId: string,
    ownerId: string,
    ttlMs: number,
    holder: string,
  ): Promise<Out> {
    const call = { resourceId, ownerId, ttlMs, holder };
    // Only Cluster restricts a script to one slot; elsewhere every call may share a batch. Every
    // key of a resource carries its id as hash tag, so the tag alone gives the slot.
    return batcher.add(this.connection.mode === 'cluster' ? keySlot(`{${resourceId}}`) : 0, call);
  }

  private lockBatcher<Out>(
    run: (calls: readonly LockCall[]) => Promise<Out[]>,
  ): GroupedBatcher<LockCall, Out> {
    return new GroupedBatcher<LockCall, Out>({
      run,
      maxCalls: LOCK_BATCH_CALLS,
      maxWeight: LOCK_BATCH_CALLS,
      weigh: () => 1,
    });
  }

  private async acquireLockBatch(calls: readonly LockCall[]): Promise<LockAcquireResult[]> {
    const reply = await this.connection.runScript(
      lua.acquireLock,
      calls.flatMap((call) => [
        this.connection.keys.tagged('lock', call.resourceId, 'm'),
        this.connection.keys.tagged('lock', call.resourceId, 'f'),
      ]),
      [
        String(calls.length),
        ...calls.flatMap((call) => [
          call.ownerId,
          String(call.ttlMs),
          call.holder,
          String(call.ttlMs + FENCE_TTL_EXTRA_MS),
        ]),
      ],
    );
    if (!Array.isArray(reply) || reply.length !== 3 * calls.length)
      throw unexpectedReply(lua.acquireLock, reply);
    const values = reply as unknown[];
    return calls.map((_, i) => lockAcquireResult(lua.acquireLock, values.slice(3 * i, 3 * i + 3)));
  }

  private async extendLockBatch(calls: readonly LockCall[]): Promise<LockExtendResult[]> {
    const reply = await this.connection.runScript(
      lua.extendLock,
      calls.flatMap((call) => [
        this.connection.keys.tagged('lock', call.resourceId, 'm'),
        this.connection.keys.tagged('lock', call.resourceId, 'f'),
      ]),
      [
        String(calls.length),
        ...calls.flatMap((call) => [
          call.ownerId,
          String(call.ttlMs),
          String(call.ttlMs + FENCE_TTL_EXTRA_MS),
        ]),
      ],
    );
    if (!Array.isArray(reply) || reply.length !== 2 * calls.length)
      throw unexpectedReply(lua.extendLock, reply);
    const values = reply as unknown[];
    return calls.map((_, i): LockExtendResult => {
      const fencingToken = values[2 * i + 1];
      if (values[2 * i] !== 1) return { extended: false };
      if (typeof fencingToken !== 'number') throw unexpectedReply(lua.extendLock, reply);
      return { extended: true, fencingToken };
    });
  }

  private async releaseLockBatch(calls: readonly LockCall[]): Promise<boolean[]> {
    const reply = await this.connection.runScript(
      lua.releaseLock,
      calls.map((call) => this.connection.keys.tagged('lock', call.resourceId, 'm')),
      calls.map((call) => call.ownerId),
    );
    if (!Array.isArray(reply) || reply.length !== calls.length) throw unexpectedReply(lua.releaseLock, reply);
    return (reply as unknown[]).map((value) => value === 1);
  }

  async acquireSemaphore(
    resourceId: string,
    ownerId: string,
    limit: number,
    ttlMs: number,
  ): Promise<LockAcquireResult> {
    assertLockArguments(ttlMs, '', limit);
    const reply = await this.connection.runScript(
      lua.acquireSemaphore,
      [
        this.connection.keys.tagged('lock', resourceId, 's'),
        this.connection.keys.tagged('lock', resourceId, 'f'),
      ],
      [ownerId, String(ttlMs), String(limit), String(ttlMs + FENCE_TTL_EXTRA_MS)],
    );
    return lockAcquireResult(lua.acquireSemaphore, reply);
  }

  async extendSemaphore(resourceId: string, ownerId: string, ttlMs: number): Promise<boolean> {
    assertTtlMs(ttlMs);
    const reply = await this.connection.runScript(
      lua.extendSemaphore,
      [
        this.connection.keys.tagged('lock', resourceId, 's'),
        this.connection.keys.tagged('lock', resourceId, 'f'),
      ],
      [ownerId, String(ttlMs), String(ttlMs + FENCE_TTL_EXTRA_MS)],
    );
    return reply === 1;
  }

  async releaseSemaphore(resourceId: string, ownerId: string): Promise<boolean> {
    const reply = await this.connection.runScript(
      lua.releaseSemaphore,
      [this.connection.keys.tagged('lock', resourceId, 's')],
      [ownerId],
    );
    return reply === 1;
  }
}

/**
 * One acquire's `{1, fencing token, ...}` or `{0, ms left, holder label (a lock) or holder count
 * (a semaphore)}`.
 */
function lockAcquireResult(script: LuaScript, reply: unknown): LockAcquireResult {
  if (!Array.isArray(reply)) throw unexpectedReply(script, reply);
  const [acquired, value, extra] = reply as unknown[];
  if (typeof value !== 'number') throw unexpectedReply(script, reply);
  if (acquired === 1) return { acquired: true, fencingToken: value };
  if (typeof extra === 'number') {
    return { acquired: false, retryAfterMs: Math.max(0, value), holder: null, holders: extra };
  }
  const label = typeof extra === 'string' ? extra : '';
  return {
    acquired: false,
    retryAfterMs: Math.max(0, value),
    holder: label === '' ? null : label,
    holders: 1,
  };
}
