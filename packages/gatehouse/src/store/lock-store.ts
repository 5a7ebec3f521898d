/**
 * The locks' part of the store (see ./store.ts): locks and semaphores with fencing tokens, used
 * by packages/gatehouse/src/locks/locks.ts.
 */
import { assertTtlMs } from './ttl.js';

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

export interface LockStore {
  /**
   * Takes the lock on `resourceId` (an HMAC of the resource name) for `ownerId` (a hash of the
   * owner token) unless it is held, and returns the resource's next fencing token.
   */
  acquireLock(resourceId: string, ownerId: string, ttlMs: number, holder: string): Promise<LockAcquireResult>;

  /** Renews the lock to `ttlMs` from now, only for its owner. */
  extendLock(resourceId: string, ownerId: string, ttlMs: number): Promise<LockExtendResult>;

  /** Frees the lock, only for its owner; false when it was not the owner's. */
  releaseLock(resourceId: string, ownerId: string): Promise<boolean>;

  /** Takes one of `limit` places on `resourceId` for `ownerId`, with the next fencing token. */
  acquireSemaphore(
    resourceId: string,
    ownerId: string,
    limit: number,
    ttlMs: number,
  ): Promise<LockAcquireResult>;

  /** Renews the owner's live place to `ttlMs` from now; false when it holds none. */
  extendSemaphore(resourceId: string, ownerId: string, ttlMs: number): Promise<boolean>;

  /** Gives up the owner's place; false when it held no live one. */
  releaseSemaphore(resourceId: string, ownerId: string): Promise<boolean>;
}

/** Checks lock arguments (a programming error if wrong) before they reach a store. */
export function assertLockArguments(ttlMs: number, holder = '', limit = 1): void {
  assertTtlMs(ttlMs);
  if (!LOCK_HOLDER_PATTERN.test(holder)) {
    throw new TypeError('a lock holder label must be at most 64 of A-Z a-z 0-9 . _ : -');
  }
  if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError('a semaphore limit must be at least 1');
}
