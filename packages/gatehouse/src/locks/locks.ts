/**
 * Distributed locks and counting semaphores with fencing tokens: one PDF render per response at
 * a time across every instance, one editor per form, at most N renders per organization.
 *
 * A lock lives on one Redis primary (standalone, the Sentinel primary, or the Cluster node that
 * owns its slot) as `SET NX PX`-style state written by a script, with a 128-bit owner token of
 * which only a hash is stored. Release and renewal compare the owner inside the script, so only
 * the owner can do either. Every acquire returns a fencing token that grows with each new holder
 * of the resource.
 *
 * What this protects: efficiency. Two instances do not start the same work at once, and a
 * second request learns at once that the work is in progress (and for how long, for a 409 with
 * `Retry-After`).
 * What it does not protect on its own: correctness against a holder that paused (a GC pause, a
 * stalled VM) past its TTL while another took over, or against a failover that lost the lock
 * key (replication is asynchronous). For that, pass the fencing token to the store you write to
 * and have it refuse tokens older than the newest it has seen (`... WHERE fence < $token`).
 * gatehouse does not use Redlock: a majority of independent primaries still cannot stop a paused
 * holder, costs several round trips, and needs several Redis deployments; fencing can.
 */
import type { KeyRing } from '../crypto/keyring.js';
import { LockHeldError, LockLostError, StoreUnavailableError, type LockLossReason } from '../errors.js';
import type { LockAcquireResult, LockStore } from '../store/lock-store.js';
import { toMs, type Duration } from '../util/duration.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { decodeFixed, randomToken, recordId } from '../util/tokens.js';
import { requireText } from '../util/validate.js';

export type LockAuditEvent =
  | {
      readonly type: 'lock.conflict';
      /** Salted hash of the resource name (never the name: it may carry an id). */
      readonly resourceHash: string;
      readonly retryAfterMs: number;
      readonly holders: number;
    }
  | {
      readonly type: 'lock.lost';
      readonly resourceHash: string;
      readonly reason: LockLossReason;
      readonly fencingToken: number;
    };

export interface LocksOptions {
  /** Lock lifetime when a call gives none. Default 30s. */
  readonly ttl?: Duration;
  /** Longest `withLock` keeps renewing when a call gives no `maxHold`. Default 10m. */
  readonly maxHold?: Duration;
  readonly audit?: (event: LockAuditEvent) => void;
  readonly logger?: Logger;
}

export interface AcquireOptions {
  /** How long the lock lasts unless renewed. Default: the Locks `ttl`. */
  readonly ttl?: Duration;
  /**
   * Most holders at once: 1 (the default) is a lock; more makes a counting semaphore ("at most 3
   * renders per organization"). Use one limit per resource name: a lock and a semaphore on the
   * same name are separate things.
   */
  readonly limit?: number;
  /**
   * A label shown to refused callers (locks only): an instance name or a session handle, at most
   * 64 of A-Z a-z 0-9 . _ : - (no personal data: it is stored in Redis as given).
   */
  readonly holder?: string;
}

export interface WaitOptions extends AcquireOptions {
  /** How long to keep trying while the resource is held. Default 0: one try. */
  readonly wait?: Duration;
  /** Stops waiting; the call then rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

export interface WithLockOptions extends WaitOptions {
  /** Renewals stop after this long and the function's signal fires (`hold-limit`). Default: the Locks `maxHold`. */
  readonly maxHold?: Duration;
}

/** The resource is held: by whom (locks with a holder label) and until when, unless renewed. */
export interface LockRefusal {
  readonly acquired: false;
  /** Until the current lock (or the first semaphore place) expires: a `Retry-After` for a 409. */
  readonly retryAfterMs: number;
  readonly holder: string | null;
  /** 1 for a lock; the places taken for a semaphore. */
  readonly holders: number;
}

export interface LockContext {
  /** Fires (with a LockLostError as its reason) when the lock is lost, or when the caller's signal fires. */
  readonly signal: AbortSignal;
  readonly fencingToken: number;
  readonly lock: Lock;
}

export type LockExtension =
  | {
      readonly extended: true;
      readonly expiresAtMs: number;
      /** The lock's fencing token; null for a semaphore place. */
      readonly fencingToken: number | null;
    }
  | { readonly extended: false };

const TOKEN_BYTES = 16;
/** base64url length of a 128-bit owner token. */
export const LOCK_TOKEN_LENGTH = 22;
const MAX_RESOURCE_LENGTH = 200;
const MIN_TTL_MS = 10;
/** Node timers take at most 2^31 - 1 ms (about 24.8 days); longer would fire at once. */
const MAX_TIMER_MS = 2_147_483_647;
const FIRST_BACKOFF_MS = 25;
const MAX_BACKOFF_MS = 1000;
/** Giving back what an unanswered acquire may have taken: first try, and the longest pause between tries. */
const ABANDONED_FIRST_TRY_MS = 250;
const ABANDONED_MAX_PAUSE_MS = 2000;
/** Past this many unanswered acquires being given back at once, the rest expire by their TTL. */
const MAX_ABANDONED = 1000;

/** What a Lock needs from Locks: renew and release by the ids it was acquired with. */
interface LockOperations {
  extend(ttlMs: number): Promise<LockExtension>;
  release(): Promise<boolean>;
}

/** A held lock or semaphore place. `token` is the owner's secret: whoever has it may renew and release. */
export class Lock {
  readonly acquired = true as const;
  private expiresAt: number;

  /** @internal Made by Locks. */
  constructor(
    private readonly operations: LockOperations,
    readonly resource: string,
    readonly token: string,
    readonly fencingToken: number,
    readonly limit: number,
    /** The TTL it was acquired with, and renews to by default. */
    readonly ttlMs: number,
    expiresAtMs: number,
  ) {
    this.expiresAt = expiresAtMs;
  }

  /** When the lock expires unless renewed, on this process's clock (counted from before the request, so never late). */
  get expiresAtMs(): number {
    return this.expiresAt;
  }

  /** Renews the lock for `ttl` (default: its acquire TTL) from now; false when it is no longer this owner's. */
  async extend(ttl?: Duration): Promise<boolean> {
    const result = await this.operations.extend(ttl === undefined ? this.ttlMs : ttlOption('ttl', ttl));
    if (result.extended) this.expiresAt = result.expiresAtMs;
    return result.extended;
  }

  /** Frees the lock; false when it was already gone (released, expired, taken over): not an error. */
  release(): Promise<boolean> {
    return this.operations.release();
  }
}

export class Locks {
  private readonly defaultTtlMs: number;
  private readonly defaultMaxHoldMs: number;
  private readonly logger: Logger;
  /** Unanswered acquires being given back (see giveBack). */
  private abandoned = 0;

  constructor(
    private readonly store: LockStore,
    private readonly keyRing: KeyRing,
    private readonly options: LocksOptions = {},
  ) {
    this.defaultTtlMs = ttlOption('locks.ttl', options.ttl ?? '30s');
    this.defaultMaxHoldMs = maxHoldOption('locks.maxHold', options.maxHold ?? '10m');
    this.logger = options.logger ?? silentLogger;
  }

  /**
   * One attempt: the lock (or a semaphore place), or a refusal saying for how long it is held.
   * Fails with StoreUnavailableError while the store is down (fail closed: mutual exclusion
   * cannot be promised without it). A call that timed out may still have taken the lock on the
   * server (a command held by the client through a failover runs on the new primary later): that
   * lock is released in the background once the store answers again, else it expires by its TTL.
   */
  async tryAcquire(resource: string, options: AcquireOptions = {}): Promise<Lock | LockRefusal> {
    requireText('resource', resource, MAX_RESOURCE_LENGTH);
    const ttlMs = options.ttl === undefined ? this.defaultTtlMs : ttlOption('ttl', options.ttl);
    const limit = limitOption(options.limit);
    if (options.holder !== undefined && limit !== 1) {
      throw new TypeError('a holder label is for locks (limit 1) only');
    }
    const token = randomToken(TOKEN_BYTES).toString('base64url');
    const resourceId = this.resourceId(resource);
    const ownerId = recordId(token);
    const sentAtMs = Date.now();
    let result: LockAcquireResult;
    try {
      result =
        limit === 1
          ? await this.store.acquireLock(resourceId, ownerId, ttlMs, options.holder ?? '')
          : await this.store.acquireSemaphore(resourceId, ownerId, limit, ttlMs);
    } catch (error) {
      if (error instanceof StoreUnavailableError) this.giveBack(resourceId, ownerId, limit, ttlMs);
      throw error;
    }
    if (result.acquired) {
      const operations: LockOperations = {
        extend: (extendTtlMs) => this.extendIds(resourceId, ownerId, extendTtlMs, limit),
        release: () => this.releaseIds(resourceId, ownerId, limit),
      };
      return new Lock(operations, resource, token, result.fencingToken, limit, ttlMs, sentAtMs + ttlMs);
    }
    this.options.audit?.({
      type: 'lock.conflict',
      resourceHash: this.keyRing.auditHash(resource),
      retryAfterMs: result.retryAfterMs,
      holders: result.holders,
    });
    return {
      acquired: false,
      retryAfterMs: result.retryAfterMs,
      holder: result.holder,
      holders: result.holders,
    };
  }

  /**
   * Tries until the lock is taken or `wait` has passed, sleeping with jittered backoff between
   * tries (never past the holder's expiry by much, never past the wait); returns the last
   * refusal when time runs out. Rejects with the signal's reason when `signal` fires.
   */
  async acquire(resource: string, options: WaitOptions = {}): Promise<Lock | LockRefusal> {
    const waitMs = toMs('wait', options.wait ?? 0);
    const signal = options.signal;
    signal?.throwIfAborted();
    const deadline = Date.now() + waitMs;
    let backoffMs = FIRST_BACKOFF_MS;
    for (;;) {
      const result = await this.tryAcquire(resource, options);
      if (result.acquired) return result;
      // The signal may have fired while the store answered: stop now, not after the wait.
      signal?.throwIfAborted();
      const leftMs = deadline - Date.now();
      if (leftMs <= 0) return result;
      const jittered = backoffMs * (0.5 + Math.random() / 2);
      await sleep(Math.max(1, Math.min(jittered, result.retryAfterMs + 1, leftMs)), signal);
      backoffMs = Math.min(backoffMs * 2, MAX_BACKOFF_MS);
    }
  }

  /**
   * Renews a lock for its owner (`token` from the acquire) to `ttl` from now. Anyone else, an
   * expired lock, or a malformed token: `{ extended: false }`, and nothing changes.
   */
  async extend(
    resource: string,
    token: string,
    options: { ttl?: Duration; limit?: number } = {},
  ): Promise<LockExtension> {
    requireText('resource', resource, MAX_RESOURCE_LENGTH);
    const ttlMs = options.ttl === undefined ? this.defaultTtlMs : ttlOption('ttl', options.ttl);
    const limit = limitOption(options.limit);
    if (!decodeFixed(token, LOCK_TOKEN_LENGTH)) return { extended: false };
    return this.extendIds(this.resourceId(resource), recordId(token), ttlMs, limit);
  }

  /**
   * Frees a lock for its owner. Releasing twice, after expiry, or with another's token is a
   * reported no-op (false), not an error.
   */
  async release(resource: string, token: string, options: { limit?: number } = {}): Promise<boolean> {
    requireText('resource', resource, MAX_RESOURCE_LENGTH);
    const limit = limitOption(options.limit);
    if (!decodeFixed(token, LOCK_TOKEN_LENGTH)) return false;
    return this.releaseIds(this.resourceId(resource), recordId(token), limit);
  }

  private async extendIds(
    resourceId: string,
    ownerId: string,
    ttlMs: number,
    limit: number,
  ): Promise<LockExtension> {
    const sentAtMs = Date.now();
    if (limit === 1) {
      const result = await this.store.extendLock(resourceId, ownerId, ttlMs);
      return result.extended
        ? { extended: true, expiresAtMs: sentAtMs + ttlMs, fencingToken: result.fencingToken }
        : { extended: false };
    }
    const extended = await this.store.extendSemaphore(resourceId, ownerId, ttlMs);
    return extended
      ? { extended: true, expiresAtMs: sentAtMs + ttlMs, fencingToken: null }
      : { extended: false };
  }

  private releaseIds(resourceId: string, ownerId: string, limit: number): Promise<boolean> {
    return limit === 1
      ? this.store.releaseLock(resourceId, ownerId)
      : this.store.releaseSemaphore(resourceId, ownerId);
  }

  /**
   * Runs `fn` holding the lock: acquires (waiting up to `wait`), renews at a third of the TTL,
   * and releases in `finally`. `fn` gets an AbortSignal that fires when the lock is lost (a
   * renewal refused, the store unreachable until the TTL ran out, or `maxHold` reached) or when
   * the caller's `signal` fires; `fn` should stop then. No timer outlives the call.
   *
   * Rejects with LockHeldError when the lock could not be taken, and with LockLostError when it
   * was lost while `fn` ran, even if `fn` then finished: its work was not exclusive.
   */
  async withLock<T>(
    resource: string,
    fn: (context: LockContext) => Promise<T> | T,
    options: WithLockOptions = {},
  ): Promise<T> {
    const ttlMs = options.ttl === undefined ? this.defaultTtlMs : ttlOption('ttl', options.ttl);
    const maxHoldMs =
      options.maxHold === undefined ? this.defaultMaxHoldMs : maxHoldOption('maxHold', options.maxHold);
    const acquired = await this.acquire(resource, { ...options, ttl: ttlMs });
    if (!acquired.acquired) {
      throw new LockHeldError(
        `resource ${this.keyRing.auditHash(resource)}`,
        acquired.retryAfterMs,
        acquired.holder,
      );
    }
    if (options.signal?.aborted) {
      // The caller gave up while the lock was being taken: hand it back, run nothing.
      await acquired.release().catch(() => false);
      options.signal.throwIfAborted();
    }
    const holding = this.holding(acquired, maxHoldMs);
    const onCallerAbort = () => {
      holding.controller.abort(options.signal?.reason);
    };
    options.signal?.addEventListener('abort', onCallerAbort, { once: true });
    if (options.signal?.aborted) onCallerAbort();
    try {
      let value: T;
      try {
        value = await fn({
          signal: holding.controller.signal,
          fencingToken: acquired.fencingToken,
          lock: acquired,
        });
      } catch (error) {
        throw holding.lost ?? error;
      }
      if (holding.lost) throw holding.lost;
      return value;
    } finally {
      options.signal?.removeEventListener('abort', onCallerAbort);
      await holding.stop();
      await acquired.release().catch((error: unknown) => {
        this.logger.warn(
          { resourceHash: this.keyRing.auditHash(resource), error: String(error) },
          'lock release failed; it expires by its TTL',
        );
      });
    }
  }

  /**
   * Keeps a held lock renewed at a third of its TTL until `stop()` (which waits for a renewal in
   * flight, so call it before releasing). `signal` fires with a LockLostError when the lock is
   * lost (as in withLock). For locks held across callbacks, such as an HTTP route's.
   */
  keepRenewed(
    lock: Lock,
    options: { maxHold?: Duration } = {},
  ): { signal: AbortSignal; stop(): Promise<void> } {
    const maxHoldMs =
      options.maxHold === undefined ? this.defaultMaxHoldMs : maxHoldOption('maxHold', options.maxHold);
    const holding = this.holding(lock, maxHoldMs);
    return { signal: holding.controller.signal, stop: () => holding.stop() };
  }

  private holding(lock: Lock, maxHoldMs: number): Holding {
    return new Holding(lock, lock.ttlMs, maxHoldMs, (reason) => {
      const resourceHash = this.keyRing.auditHash(lock.resource);
      this.logger.warn({ resourceHash, reason }, 'lock lost');
      this.options.audit?.({ type: 'lock.lost', resourceHash, reason, fencingToken: lock.fencingToken });
    });
  }

  /**
   * Releases, in the background, what an acquire that got no answer may still have taken: nobody
   * knows its owner token, so it would otherwise block the resource for its whole TTL after the
   * store came back. Tries with backoff until the store answers twice (the second answer covers
   * a held command that runs after the first), the release succeeds, or the TTL is over. Only
   * this owner's hold can be released. Timers are unref'd: they never keep a process alive.
   */
  private giveBack(resourceId: string, ownerId: string, limit: number, ttlMs: number): void {
    if (this.abandoned >= MAX_ABANDONED) return;
    this.abandoned++;
    const giveUpAtMs = Date.now() + ttlMs;
    let pauseMs = ABANDONED_FIRST_TRY_MS;
    let answers = 0;
    const tryLater = (): void => {
      if (Date.now() + pauseMs >= giveUpAtMs) {
        this.abandoned--;
        return;
      }
      setTimeout(() => {
        this.releaseIds(resourceId, ownerId, limit).then(
          (released) => {
            answers++;
            if (released || answers >= 2) this.abandoned--;
            else tryLater();
          },
          () => {
            tryLater();
          },
        );
      }, pauseMs).unref();
      pauseMs = Math.min(pauseMs * 2, ABANDONED_MAX_PAUSE_MS);
    };
    tryLater();
  }

  /** The resource as it appears in keys: an HMAC, so no id reaches Redis in clear. */
  private resourceId(resource: string): string {
    return this.keyRing.identifier('lock resource', resource, 22);
  }
}

/**
 * The renewal loop of one `withLock` call: renews at a third of the TTL, declares the lock lost
 * when a renewal is refused, when the local estimate of its expiry passes without a successful
 * renewal, or at the hold limit. Three timers at most, all cleared by `stop`.
 */
class Holding {
  readonly controller = new AbortController();
  lost: LockLostError | undefined;
  private renewTimer: NodeJS.Timeout | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  private readonly holdTimer: NodeJS.Timeout;
  private renewing: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly lock: Lock,
    private readonly ttlMs: number,
    maxHoldMs: number,
    private readonly onLost: (reason: LockLossReason) => void,
  ) {
    this.holdTimer = setTimeout(() => {
      this.lose('hold-limit', `the lock was held for its limit of ${String(maxHoldMs)} ms`);
    }, maxHoldMs);
    this.armExpiry();
    this.scheduleRenewal(Math.max(1, Math.floor(ttlMs / 3)));
  }

  /** Stops renewing and waits for a renewal in flight, so nothing renews after the release. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.renewTimer);
    clearTimeout(this.expiryTimer);
    clearTimeout(this.holdTimer);
    await this.renewing;
  }

  private scheduleRenewal(delayMs: number): void {
    if (this.stopped) return;
    this.renewTimer = setTimeout(() => {
      this.renewTimer = undefined;
      this.renewing = this.renew().finally(() => {
        this.renewing = undefined;
      });
    }, delayMs);
  }

  private async renew(): Promise<void> {
    let extended: boolean;
    try {
      extended = await this.lock.extend(this.ttlMs);
    } catch {
      // The store did not answer: try again soon; the expiry timer decides when it is too late.
      if (!this.stopped) {
        const leftMs = this.lock.expiresAtMs - Date.now();
        this.scheduleRenewal(Math.max(10, Math.min(Math.floor(this.ttlMs / 3), Math.floor(leftMs / 4))));
      }
      return;
    }
    if (this.stopped) return;
    if (!extended) {
      this.lose('not-held', 'the lock was taken over or expired: a renewal was refused');
      return;
    }
    this.armExpiry();
    this.scheduleRenewal(Math.max(1, Math.floor(this.ttlMs / 3)));
  }

  private armExpiry(): void {
    clearTimeout(this.expiryTimer);
    this.expiryTimer = setTimeout(
      () => {
        this.lose('store-unavailable', 'the lock expired before the store confirmed a renewal');
      },
      Math.max(0, this.lock.expiresAtMs - Date.now()),
    );
  }

  private lose(reason: LockLossReason, message: string): void {
    if (this.lost || this.stopped) return;
    this.lost = new LockLostError(reason, message);
    clearTimeout(this.renewTimer);
    clearTimeout(this.expiryTimer);
    clearTimeout(this.holdTimer);
    this.stopped = true;
    this.onLost(reason);
    this.controller.abort(this.lost);
  }
}

function ttlOption(name: string, value: Duration): number {
  const ms = toMs(name, value);
  if (ms < MIN_TTL_MS || ms > MAX_TIMER_MS) {
    throw new RangeError(`${name} must be from ${String(MIN_TTL_MS)} ms to about 24 days`);
  }
  return ms;
}

function maxHoldOption(name: string, value: Duration): number {
  const ms = toMs(name, value);
  if (ms < 1 || ms > MAX_TIMER_MS) throw new RangeError(`${name} must be from 1 ms to about 24 days`);
  return ms;
}

function limitOption(limit: number | undefined): number {
  const value = limit ?? 1;
  if (!Number.isSafeInteger(value) || value < 1)
    throw new RangeError('limit must be an integer of at least 1');
  return value;
}

/** Waits `ms`, or rejects with the signal's reason when it fires first; leaves no timer or listener behind. */
function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason as Error);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason as Error);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
