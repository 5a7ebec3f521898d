/** The locks' store operations in memory (the contract: ../lock-store.ts), as the Lua scripts do them. */
import {
  assertLockArguments,
  FENCE_TTL_EXTRA_MS,
  type LockAcquireResult,
  type LockExtendResult,
  type LockStore,
} from '../lock-store.js';
import { assertTtlMs } from '../ttl.js';
import type { MemoryState } from './state.js';

export class MemoryLockOperations implements LockStore {
  constructor(private readonly state: MemoryState) {}

  acquireLock(
    resourceId: string,
    ownerId: string,
    ttlMs: number,
    holder: string,
  ): Promise<LockAcquireResult> {
    return this.state.operation((): LockAcquireResult => {
      assertLockArguments(ttlMs, holder);
      const key = this.state.keys.tagged('lock', resourceId, 'm');
      const current = this.state.get(key);
      if (typeof current === 'string') {
        const label = current.split(' ')[2] ?? '';
        return {
          acquired: false,
          retryAfterMs: this.state.pttl(key),
          holder: label === '' ? null : label,
          holders: 1,
        };
      }
      const fencingToken = this.nextFencingToken(resourceId, ttlMs);
      this.state.set(key, `${ownerId} ${String(fencingToken)} ${holder}`, ttlMs);
      return { acquired: true, fencingToken };
    });
  }

  extendLock(resourceId: string, ownerId: string, ttlMs: number): Promise<LockExtendResult> {
    return this.state.operation((): LockExtendResult => {
      assertTtlMs(ttlMs);
      const key = this.state.keys.tagged('lock', resourceId, 'm');
      const [owner, fence] = this.state.text(key).split(' ');
      if (owner !== ownerId) return { extended: false };
      this.state.expire(key, ttlMs);
      this.state.expire(this.state.keys.tagged('lock', resourceId, 'f'), ttlMs + FENCE_TTL_EXTRA_MS);
      return { extended: true, fencingToken: Number(fence) };
    });
  }

  releaseLock(resourceId: string, ownerId: string): Promise<boolean> {
    return this.state.operation(() => {
      const key = this.state.keys.tagged('lock', resourceId, 'm');
      if (this.state.text(key).split(' ')[0] !== ownerId) return false;
      this.state.delete(key);
      return true;
    });
  }

  acquireSemaphore(
    resourceId: string,
    ownerId: string,
    limit: number,
    ttlMs: number,
  ): Promise<LockAcquireResult> {
    return this.state.operation((): LockAcquireResult => {
      assertLockArguments(ttlMs, '', limit);
      const now = this.state.now();
      const key = this.state.keys.tagged('lock', resourceId, 's');
      const places = this.state.zset(key);
      for (const [owner, expiry] of places) if (expiry <= now) places.delete(owner);
      if (places.size >= limit) {
        const first = Math.min(...places.values());
        return { acquired: false, retryAfterMs: first - now, holder: null, holders: places.size };
      }
      places.set(ownerId, now + ttlMs);
      this.state.expire(key, Math.max(...places.values()) - now);
      return { acquired: true, fencingToken: this.nextFencingToken(resourceId, ttlMs) };
    });
  }

  extendSemaphore(resourceId: string, ownerId: string, ttlMs: number): Promise<boolean> {
    return this.state.operation(() => {
      assertTtlMs(ttlMs);
      const now = this.state.now();
      const key = this.state.keys.tagged('lock', resourceId, 's');
      const places = this.state.zset(key);
      const expiry = places.get(ownerId);
      if (expiry === undefined) return false;
      if (expiry <= now) {
        places.delete(ownerId);
        return false;
      }
      places.set(ownerId, now + ttlMs);
      this.state.expire(key, Math.max(...places.values()) - now);
      this.state.expire(this.state.keys.tagged('lock', resourceId, 'f'), ttlMs + FENCE_TTL_EXTRA_MS);
      return true;
    });
  }

  releaseSemaphore(resourceId: string, ownerId: string): Promise<boolean> {
    return this.state.operation(() => {
      const places = this.state.zset(this.state.keys.tagged('lock', resourceId, 's'));
      const expiry = places.get(ownerId);
      if (expiry === undefined) return false;
      places.delete(ownerId);
      return expiry > this.state.now();
    });
  }

  /** max(last token + 1, now): grows with every holder, and with the clock when the key is gone. */
  private nextFencingToken(resourceId: string, ttlMs: number): number {
    const key = this.state.keys.tagged('lock', resourceId, 'f');
    const fencingToken = Math.max(Number(this.state.get(key) ?? 0) + 1, this.state.now());
    this.state.set(key, String(fencingToken), ttlMs + FENCE_TTL_EXTRA_MS);
    return fencingToken;
  }
}
