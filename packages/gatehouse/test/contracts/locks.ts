/**
 * Locks and semaphores on the memory store, standalone Redis and Cluster: mutual exclusion under
 * contention, fencing tokens that only grow, owner-only release and renewal, takeover after the
 * TTL with the old holder told, hold limits, typed refusals, and no resource name in the store.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { KeyRing } from '../../src/crypto/keyring.js';
import { LockHeldError, LockLostError, StoreUnavailableError } from '../../src/errors.js';
import { Lock, Locks, type LockAuditEvent } from '../../src/locks/locks.js';
import type { Store } from '../../src/store/store.js';
import type { SessionFixture } from './sessions.js';

/** A store this instance can no longer renew through (cut off from Redis), while others still reach it. */
function withFailingRenewals(store: Store): Store {
  return new Proxy(store, {
    get(target, property, receiver) {
      if (property === 'extendLock' || property === 'extendSemaphore') {
        return () => Promise.reject(new StoreUnavailableError('cut off from Redis'));
      }
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** A signal that fires right after the current turn: while an acquire is on its way to the store. */
function abortedSoon(): AbortSignal {
  const controller = new AbortController();
  queueMicrotask(() => {
    controller.abort(new Error('the caller left'));
  });
  return controller.signal;
}

/** A store whose lock acquires answer only after `delayMs`. */
function withSlowAcquires(store: Store, delayMs: number): Store {
  return new Proxy(store, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      const method = (value as (...a: unknown[]) => unknown).bind(target);
      if (property !== 'acquireLock') return method;
      return async (...args: unknown[]) => {
        await sleep(delayMs);
        return method(...args);
      };
    },
  });
}

/** The promise's error, or null when it fulfils: for outcomes awaited later. */
function settled(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => null,
    (error: unknown) => error,
  );
}

export function lockSuite(name: string, setup: () => Promise<SessionFixture>): void {
  describe(`locks: ${name}`, () => {
    let fixture: SessionFixture;
    let store: Store;
    let locks: Locks;
    const keyRing = KeyRing.random();
    const resources: string[] = [];
    const audit: LockAuditEvent[] = [];

    function resource(label: string): string {
      const value = `${label}:response-${String(Math.random()).slice(2)}`;
      resources.push(value);
      return value;
    }

    before(async () => {
      fixture = await setup();
      store = fixture.store;
      await store.waitUntilReady(5000);
      locks = new Locks(store, keyRing, { audit: (event) => audit.push(event) });
    });

    after(async () => {
      const dump = [...(await fixture.dump())].map(([key, value]) => `${key} ${value}`).join('\n');
      for (const value of resources) {
        assert.ok(!dump.includes(value), `${value} is not in the store`);
        assert.ok(!dump.includes(value.split(':')[1] ?? value), 'nor its id');
      }
      assert.deepEqual(await fixture.keysWithoutTtl(), []);
      await store.close();
      await fixture.teardown();
    });

    it('takes a free lock once; a second try is refused with the time left and the holder label', async () => {
      const pdf = resource('pdf');
      const lock = await locks.tryAcquire(pdf, { ttl: '5s', holder: 'instance-a' });
      assert.ok(lock instanceof Lock);
      assert.match(lock.token, /^[A-Za-z0-9_-]{22}$/);
      assert.ok(Number.isSafeInteger(lock.fencingToken) && lock.fencingToken > 0);
      assert.ok(lock.expiresAtMs <= Date.now() + 5000);
      const refused = await locks.tryAcquire(pdf, { ttl: '5s' });
      assert.equal(refused.acquired, false);
      assert.ok(refused.retryAfterMs > 4000 && refused.retryAfterMs <= 5000);
      assert.ok(refused.holder === 'instance-a' && refused.holders === 1);
      const conflict = audit.findLast((event) => event.type === 'lock.conflict');
      assert.equal(conflict?.resourceHash, keyRing.auditHash(pdf));
      assert.equal(await lock.release(), true);
    });

    it('releases and renews for the owner only; twice or late is a reported no-op', async () => {
      const form = resource('form');
      const lock = await locks.tryAcquire(form, { ttl: '300ms' });
      assert.ok(lock.acquired);
      const stranger = await locks.tryAcquire(resource('other'), { ttl: '5s' });
      assert.ok(stranger.acquired);
      assert.equal(await locks.release(form, stranger.token), false, 'another owner cannot release');
      assert.deepEqual(await locks.extend(form, stranger.token), { extended: false });
      assert.equal(await locks.release(form, 'not a token'), false, 'malformed tokens are refused');
      assert.equal((await locks.tryAcquire(form)).acquired, false, 'the lock is still in place');

      const extended = await locks.extend(form, lock.token, { ttl: '5s' });
      assert.ok(extended.extended);
      assert.equal(extended.fencingToken, lock.fencingToken);
      const refused = await locks.tryAcquire(form);
      assert.ok(!refused.acquired && refused.retryAfterMs > 4000, 'the renewal gave a fresh TTL');
      assert.equal(await lock.release(), true);
      assert.equal(await lock.release(), false, 'releasing twice is reported');
      assert.equal(await lock.extend(), false, 'a released lock cannot be renewed');

      const late = await locks.tryAcquire(form, { ttl: '50ms' });
      assert.ok(late.acquired);
      await sleep(120);
      assert.equal(await late.extend(), false, 'an expired lock cannot be renewed');
      assert.equal(await late.release(), false, 'releasing after expiry is reported');
      await stranger.release();
    });

    it('gives a lock tried 50 times at once to exactly one caller', async () => {
      const pdf = resource('race');
      const tries = await Promise.all(Array.from({ length: 50 }, () => locks.tryAcquire(pdf, { ttl: '5s' })));
      const winners = tries.filter((result) => result.acquired);
      assert.equal(winners.length, 1);
      const releases = await Promise.all(
        tries.map((result) => (result.acquired ? result.release() : Promise.resolve(false))),
      );
      assert.deepEqual(releases.filter(Boolean), [true]);
    });

    it('hands out fencing tokens that grow with every new holder', async () => {
      const form = resource('fence');
      const tokens: number[] = [];
      for (let i = 0; i < 10; i++) {
        const lock = await locks.tryAcquire(form, { ttl: i % 2 === 0 ? '5s' : '20ms' });
        assert.ok(lock.acquired);
        tokens.push(lock.fencingToken);
        if (i % 2 === 0) await lock.release();
        else await sleep(40); // expires instead of being released
      }
      for (let i = 1; i < tokens.length; i++)
        assert.ok((tokens[i] ?? 0) > (tokens[i - 1] ?? 0), tokens.join(' '));
      assert.ok((tokens[0] ?? 0) > 1_600_000_000_000, 'tokens follow the store clock in ms');
    });

    it('50 concurrent contenders never overlap, and each later holder has a larger fencing token', async () => {
      const shared = resource('contended');
      let inside = 0;
      let most = 0;
      const entered: number[] = [];
      const results = await Promise.all(
        Array.from({ length: 50 }, () =>
          locks.withLock(
            shared,
            async ({ fencingToken }) => {
              inside++;
              most = Math.max(most, inside);
              entered.push(fencingToken);
              await sleep(2);
              inside--;
              return fencingToken;
            },
            { ttl: '5s', wait: '60s' },
          ),
        ),
      );
      assert.equal(most, 1, 'never two holders at once');
      assert.equal(results.length, 50);
      for (let i = 1; i < entered.length; i++) assert.ok((entered[i] ?? 0) > (entered[i - 1] ?? 0));
    });

    it('a semaphore admits at most N holders at once', async () => {
      const org = resource('renders');
      let inside = 0;
      let most = 0;
      await Promise.all(
        Array.from({ length: 20 }, () =>
          locks.withLock(
            org,
            async () => {
              inside++;
              most = Math.max(most, inside);
              await sleep(10);
              inside--;
            },
            { ttl: '5s', wait: '60s', limit: 3 },
          ),
        ),
      );
      assert.equal(most, 3, 'up to 3 at once, never more');

      const places = [];
      for (let i = 0; i < 3; i++) places.push(await locks.tryAcquire(org, { limit: 3, ttl: '5s' }));
      const fourth = await locks.tryAcquire(org, { limit: 3, ttl: '5s' });
      assert.ok(!fourth.acquired && fourth.holders === 3 && fourth.retryAfterMs > 4000);
      const [first] = places;
      assert.ok(first?.acquired);
      assert.equal(
        await locks.release(org, first.token),
        false,
        'a semaphore place is released with its limit',
      );
      assert.equal(await first.release(), true);
      assert.equal(await first.release(), false);
      const again = await locks.tryAcquire(org, { limit: 3, ttl: '5s' });
      assert.ok(
        again.acquired &&
          again.fencingToken > Math.max(...places.map((p) => (p.acquired ? p.fencingToken : 0))),
      );
      assert.equal(await again.extend('6s'), true);
      for (const place of [...places.slice(1), again])
        if (place.acquired) assert.equal(await place.release(), true);
    });

    it('a holder that stops renewing is taken over after its TTL, and its signal fires first', async () => {
      const form = resource('stalled');
      const cutOff = new Locks(withFailingRenewals(store), keyRing);
      let signalled: unknown;
      let signalledAt = 0;
      const holder = settled(
        cutOff.withLock(
          form,
          async ({ signal }) => {
            await new Promise<void>((resolve) => {
              signal.addEventListener('abort', () => {
                signalled = signal.reason;
                signalledAt = Date.now();
                resolve();
              });
            });
          },
          { ttl: '300ms' },
        ),
      );
      await sleep(10);
      const successor = await locks.acquire(form, { ttl: '5s', wait: '5s' });
      const tookOverAt = Date.now();
      assert.ok(successor.acquired);
      assert.ok((await holder) instanceof LockLostError, 'withLock rejected with LockLostError');
      assert.ok(signalled instanceof LockLostError);
      assert.equal(signalled.reason, 'store-unavailable');
      assert.ok(signalledAt > 0 && signalledAt <= tookOverAt, 'the old holder was told before the takeover');
      await successor.release();
    });

    it('a holder whose lock was taken over learns it at the next renewal (reason not-held)', async () => {
      const form = resource('taken');
      const lost: LockAuditEvent[] = [];
      const watching = new Locks(store, keyRing, { audit: (event) => lost.push(event) });
      const outcome = watching.withLock(
        form,
        async ({ signal, lock }) => {
          // Someone with the token frees it and another holder takes it meanwhile.
          assert.equal(await locks.release(form, lock.token), true);
          const other = await locks.tryAcquire(form, { ttl: '5s' });
          assert.ok(other.acquired);
          await new Promise<void>((resolve) => {
            signal.addEventListener('abort', () => {
              resolve();
            });
          });
          assert.ok(signal.reason instanceof LockLostError);
          assert.equal(signal.reason.reason, 'not-held');
          assert.equal((await locks.tryAcquire(form)).acquired, false, "the new holder's lock stands");
          await other.release();
          return 'finished anyway';
        },
        { ttl: '150ms' },
      );
      await assert.rejects(outcome, { code: 'GH_ERR_LOCK_LOST', reason: 'not-held' });
      assert.deepEqual(
        lost.map((event) => [event.type, event.type === 'lock.lost' ? event.reason : null]),
        [['lock.lost', 'not-held']],
      );
    });

    it('withLock renews past the TTL, releases after, and refuses a held lock with LockHeldError', async () => {
      const pdf = resource('long');
      const value = await locks.withLock(
        pdf,
        async ({ signal, fencingToken }) => {
          const blocked = await locks.tryAcquire(pdf);
          assert.equal(blocked.acquired, false);
          await assert.rejects(
            locks.withLock(pdf, () => 'never', { holder: 'second' }),
            (error: unknown) =>
              error instanceof LockHeldError && error.retryAfterMs > 0 && error.httpStatus === 409,
          );
          await sleep(1300); // over three TTLs: only renewals keep it
          assert.equal(signal.aborted, false);
          assert.equal((await locks.tryAcquire(pdf)).acquired, false, 'still held after 3 TTLs');
          return fencingToken;
        },
        { ttl: '400ms' },
      );
      assert.ok(value > 0);
      const after = await locks.tryAcquire(pdf);
      assert.ok(after.acquired, 'released when the function returned');
      await after.release();

      await assert.rejects(
        locks.withLock(pdf, () => {
          throw new Error('render failed');
        }),
        /render failed/,
      );
      const again = await locks.tryAcquire(pdf);
      assert.ok(again.acquired, 'released when the function threw');
      await again.release();
    });

    it('stops at the hold limit: the signal fires and the lock is released', async () => {
      const pdf = resource('hold');
      await assert.rejects(
        locks.withLock(
          pdf,
          async ({ signal }) => {
            await new Promise<void>((resolve) => {
              signal.addEventListener('abort', () => {
                resolve();
              });
            });
            signal.throwIfAborted();
          },
          { ttl: '1s', maxHold: '150ms' },
        ),
        { code: 'GH_ERR_LOCK_LOST', reason: 'hold-limit' },
      );
      const after = await locks.tryAcquire(pdf);
      assert.ok(after.acquired, 'released after the hold limit');
      await after.release();
    });

    it('waits with backoff, gives up after `wait`, and honours an AbortSignal', async () => {
      const form = resource('wait');
      const held = await locks.tryAcquire(form, { ttl: '5s' });
      assert.ok(held.acquired);
      const started = Date.now();
      const refused = await locks.acquire(form, { wait: '200ms' });
      assert.equal(refused.acquired, false);
      assert.ok(Date.now() - started >= 190 && Date.now() - started < 1500);

      const controller = new AbortController();
      setTimeout(() => {
        controller.abort(new Error('client went away'));
      }, 50);
      await assert.rejects(
        locks.acquire(form, { wait: '10s', signal: controller.signal }),
        /client went away/,
      );
      await assert.rejects(
        locks.acquire(form, { signal: AbortSignal.abort(new Error('already')) }),
        /already/,
      );
      // The signal fires while a try is still waiting for the store: the wait stops at once.
      const slowLocks = new Locks(withSlowAcquires(store, 50), keyRing);
      const aborting = new AbortController();
      setTimeout(() => {
        aborting.abort(new Error('gone'));
      }, 10);
      const abortedAt = Date.now();
      await assert.rejects(slowLocks.acquire(form, { wait: '10s', signal: aborting.signal }), /gone/);
      assert.ok(Date.now() - abortedAt < 1000, 'stopped when the try came back, not after the wait');

      const waiter = locks.acquire(form, { wait: '5s', ttl: '5s' });
      await sleep(30);
      await held.release();
      const got = await waiter;
      assert.ok(got.acquired && got.fencingToken > held.fencingToken, 'a waiter gets the lock once freed');
      await got.release();
    });

    it('refuses bad input as programming errors', async () => {
      await assert.rejects(locks.tryAcquire(''), TypeError);
      await assert.rejects(locks.tryAcquire('x'.repeat(201)), TypeError);
      await assert.rejects(locks.tryAcquire(resource('bad'), { ttl: '5ms' }), RangeError);
      await assert.rejects(locks.tryAcquire(resource('bad'), { ttl: 'soon' }), TypeError);
      await assert.rejects(
        locks.tryAcquire(resource('bad'), { ttl: '30d' }),
        RangeError,
        'past a Node timer',
      );
      await assert.rejects(
        locks.withLock(resource('bad'), () => 1, { maxHold: '30d' }),
        RangeError,
      );
      await assert.rejects(
        locks.withLock(resource('bad'), () => 1, { maxHold: 0 }),
        RangeError,
      );
      let ran = false;
      const gone = resource('gone');
      await assert.rejects(
        locks.withLock(
          gone,
          () => {
            ran = true;
          },
          { signal: abortedSoon() },
        ),
        /left/,
      );
      assert.equal(ran, false, 'a caller that gave up while the lock was taken gets nothing run');
      const free = await locks.tryAcquire(gone);
      assert.ok(free.acquired, 'and the lock was handed back');
      await free.release();
      await assert.rejects(locks.tryAcquire(resource('bad'), { limit: 0 }), RangeError);
      await assert.rejects(locks.tryAcquire(resource('bad'), { holder: 'has space' }), TypeError);
      await assert.rejects(locks.tryAcquire(resource('bad'), { holder: 'a@b.example' }), TypeError);
      await assert.rejects(locks.tryAcquire(resource('bad'), { holder: 'x', limit: 2 }), TypeError);
    });
  });
}
