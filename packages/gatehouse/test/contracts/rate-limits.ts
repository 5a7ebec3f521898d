/**
 * Rate limits on the memory store, standalone Redis and Cluster: exact GCRA behaviour, all or
 * nothing across policies, dry runs (peek) that charge nothing, one limit shared by instances,
 * subjects never in clear.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { KeyRing } from '../../src/crypto/keyring.js';
import { RateLimits } from '../../src/rate-limit/rate-limits.js';
import { MemoryStore } from '../../src/store/memory/store.js';
import type { Store } from '../../src/store/store.js';
import type { SessionFixture } from './sessions.js';

/** `store`, counting its `checkRateLimits` calls (checks and peeks alike). */
function countingRateLimitCalls<T extends object>(store: T): { store: T; calls: () => number } {
  let calls = 0;
  const counted = new Proxy(store, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]): unknown => {
        if (property === 'checkRateLimits') calls++;
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { store: counted, calls: () => calls };
}

export function rateLimitSuite(name: string, setup: () => Promise<SessionFixture>): void {
  describe(`rate limits: ${name}`, () => {
    let fixture: SessionFixture;
    let store: Store;
    const keyRing = KeyRing.random();
    const subjects: string[] = [];
    const others: Store[] = [];

    function subject(label: string): string {
      const value = `${label}-${String(Math.random()).slice(2)}@example.com`;
      subjects.push(value);
      return value;
    }

    before(async () => {
      fixture = await setup();
      store = fixture.store;
      await store.waitUntilReady(5000);
    });

    after(async () => {
      const dump = [...(await fixture.dump())].map(([key, value]) => `${key} ${value}`).join('\n');
      for (const value of subjects) assert.ok(!dump.includes(value), `${value} is not in the store`);
      assert.deepEqual(await fixture.keysWithoutTtl(), []);
      for (const other of others) if (other !== store) await other.close();
      await store.close();
      await fixture.teardown();
    });

    it('5/1m+2 admits 7 at once, refuses the 8th with the time until the next, with headers', async () => {
      const limits = new RateLimits(store, keyRing, { policies: { auth: '5/1m+2' } });
      const ip = subject('ip');
      const remaining: number[] = [];
      for (let i = 0; i < 7; i++) {
        const decision = await limits.check({ auth: ip });
        assert.equal(decision.allowed, true, `request ${String(i + 1)}`);
        assert.equal(decision.limit, 7);
        remaining.push(decision.remaining);
      }
      assert.deepEqual(remaining, [6, 5, 4, 3, 2, 1, 0]);
      const refused = await limits.check({ auth: ip });
      assert.equal(refused.allowed, false);
      assert.equal(refused.policy, 'auth');
      assert.ok(
        refused.retryAfterMs > 11_000 && refused.retryAfterMs <= 12_000,
        `retry after ${String(refused.retryAfterMs)}`,
      );
      assert.ok(refused.resetMs > 83_000 && refused.resetMs <= 84_000, `reset ${String(refused.resetMs)}`);
      const headers = limits.headers(refused);
      assert.equal(headers['X-RateLimit-Limit'], '7');
      assert.equal(headers['X-RateLimit-Remaining'], '0');
      assert.equal(headers['Retry-After'], '12');
      assert.equal(headers['RateLimit-Policy'], '"auth";q=7;w=60');
      assert.match(headers.RateLimit ?? '', /^"auth";r=0;t=8[34]$/);
    });

    it('gives checks made at once the results of the same checks one by one', async () => {
      const limits = new RateLimits(store, keyRing, { policies: { auth: '5/1m+2' } });
      const ip = subject('burst');
      const decisions = await Promise.all(Array.from({ length: 10 }, () => limits.check({ auth: ip })));
      assert.deepEqual(
        decisions.map((decision) => decision.allowed),
        [true, true, true, true, true, true, true, false, false, false],
      );
      assert.deepEqual(
        decisions.slice(0, 7).map((decision) => decision.remaining),
        [6, 5, 4, 3, 2, 1, 0],
      );
      for (const refused of decisions.slice(7)) {
        assert.ok(refused.retryAfterMs > 11_000 && refused.retryAfterMs <= 12_000);
      }

      // All or nothing holds per request inside a batch, in the order of the calls.
      const multi = new RateLimits(store, keyRing, { policies: { strict: '1/1m', loose: '10/1m' } });
      const user = subject('batch');
      const [first, second, third] = await Promise.all([
        multi.check({ strict: user, loose: user }),
        multi.check({ strict: user, loose: user }),
        multi.check({ loose: user }),
      ]);
      assert.deepEqual(
        [first.allowed, second.allowed, second.policy, third.allowed, third.remaining],
        [true, false, 'strict', true, 8],
      );
    });

    it('refuses a malformed rule without failing the checks made with it', async () => {
      const limits = new RateLimits(store, keyRing, { policies: { api: '100/1m' } });
      const [good, bad] = await Promise.allSettled([
        limits.check({ api: subject('good') }),
        store.checkRateLimits([{ id: 'api:x', intervalMs: 0, toleranceMs: 0 }]),
        store.checkRateLimits([]),
      ]);
      assert.equal(good.status === 'fulfilled' && good.value.allowed, true);
      assert.equal(bad.status, 'rejected');
      await assert.rejects(store.checkRateLimits([]), TypeError);
      await assert.rejects(
        store.checkRateLimits([{ id: 'api:x', intervalMs: 1.5, toleranceMs: 0 }]),
        RangeError,
      );
    });

    it('admits again after period / limit, one at a time', async () => {
      const limits = new RateLimits(store, keyRing, { policies: { fast: '5/500ms+2' } });
      const user = subject('user');
      for (let i = 0; i < 7; i++) assert.equal((await limits.check({ fast: user })).allowed, true);
      const refused = await limits.check({ fast: user });
      assert.equal(refused.allowed, false);
      assert.ok(refused.retryAfterMs <= 100);
      await sleep(refused.retryAfterMs + 15);
      assert.equal((await limits.check({ fast: user })).allowed, true);
      assert.equal((await limits.check({ fast: user })).allowed, false);
    });

    it('charges no policy when one of them refuses', async () => {
      const limits = new RateLimits(store, keyRing, { policies: { strict: '1/1m', loose: '10/1m' } });
      const user = subject('user');
      assert.equal((await limits.check({ strict: user, loose: user })).allowed, true);
      const refused = await limits.check({ strict: user, loose: user });
      assert.equal(refused.allowed, false);
      assert.equal(refused.policy, 'strict', 'the refusing policy decides');
      const loose = await limits.check({ loose: user });
      assert.equal(loose.remaining, 8, 'loose was charged once, not for the refused request');
    });

    it('shares one limit between instances', async () => {
      const other = fixture.otherStore();
      others.push(other);
      await other.waitUntilReady(5000);
      const a = new RateLimits(store, keyRing, { policies: { api: '2/1m+1' } });
      const b = new RateLimits(other, keyRing, { policies: { api: '2/1m+1' } });
      const user = subject('shared');
      const results = [];
      for (const limits of [a, b, a, b, a]) results.push((await limits.check({ api: user })).allowed);
      assert.deepEqual(results, [true, true, true, false, false]);
    });

    it('takes the clock from the store, not from the process', async () => {
      const limits = new RateLimits(store, keyRing, { policies: { auth: '5/1m+2' } });
      const user = subject('clock');
      const realNow = Date.now;
      const decisions = [];
      try {
        for (const skewMs of [0, 5 * 60_000, -7 * 60_000, 0, 3 * 60_000, 0, 0, 0]) {
          Date.now = () => realNow() + skewMs;
          decisions.push(await limits.check({ auth: user }));
        }
      } finally {
        Date.now = realNow;
      }
      assert.deepEqual(
        decisions.map((decision) => decision.allowed),
        [true, true, true, true, true, true, true, false],
      );
    });

    it('answers a refused subject from memory until its retry time, without a store call', async () => {
      const counting = countingRateLimitCalls(store);
      const limits = new RateLimits(counting.store, keyRing, { policies: { auth: '5/1m+2' } });
      const ip = subject('blocked');
      for (let i = 0; i < 8; i++) await limits.check({ auth: ip });
      assert.equal(counting.calls(), 8);
      for (let i = 0; i < 20; i++) {
        const decision = await limits.check({ auth: ip });
        assert.equal(decision.allowed, false);
        assert.ok(decision.retryAfterMs > 11_000);
      }
      assert.equal(counting.calls(), 8, 'repeat refusals came from memory');
      assert.equal((await limits.check({ auth: subject('other') })).allowed, true, 'others still asked');
      assert.equal(counting.calls(), 9);
    });

    it('while the store is down: closed policies refuse, open ones use the local limiter, marked degraded', async () => {
      const other = fixture.otherStore();
      const down = other === store ? new MemoryStore({ keyPrefix: store.keys.prefix }) : other;
      await down.close();
      const limits = new RateLimits(down, keyRing, {
        policies: { auth: '5/1m+2', api: { policy: '4/1m', whenStoreDown: 'open' } },
        expectedInstances: 2,
      });
      const user = subject('down');
      const closed = await limits.check({ auth: user });
      assert.deepEqual(
        { allowed: closed.allowed, reason: closed.reason, degraded: closed.degraded },
        { allowed: false, reason: 'store-unavailable', degraded: true },
      );
      assert.equal(limits.degraded, true);
      const open = [];
      for (let i = 0; i < 4; i++) open.push(await limits.check({ api: user }));
      assert.deepEqual(
        open.map((decision) => [decision.allowed, decision.degraded]),
        [
          [true, true],
          [true, true],
          [false, true],
          [false, true],
        ],
        'each of 2 instances admits its half of 4',
      );
      const mixed = await limits.check({ api: subject('mixed'), auth: user });
      assert.equal(mixed.reason, 'store-unavailable', 'a closed policy in the set refuses');
    });

    it('peek answers what check would, charging nothing, and a dry run writes no key', async () => {
      const limits = new RateLimits(store, keyRing, { policies: { auth: '5/1m+2' } });
      const ip = subject('peek');
      const peeks = [];
      for (let i = 0; i < 5; i++) peeks.push(await limits.peek({ auth: ip }));
      for (const peeked of peeks) {
        assert.deepEqual(
          [peeked.allowed, peeked.reason, peeked.policy, peeked.limit, peeked.remaining, peeked.retryAfterMs],
          [true, null, 'auth', 7, 6, 0],
          'a peek at a full bucket answers as the first check will',
        );
      }
      const first = await limits.check({ auth: ip });
      assert.equal(first.remaining, 6, 'the five peeks charged nothing');
      for (let i = 0; i < 6; i++) await limits.check({ auth: ip });
      const peekedRefusal = await limits.peek({ auth: ip });
      assert.equal(peekedRefusal.allowed, false);
      assert.equal(peekedRefusal.reason, 'limited');
      assert.ok(
        peekedRefusal.retryAfterMs > 11_000 && peekedRefusal.retryAfterMs <= 12_000,
        `retry after ${String(peekedRefusal.retryAfterMs)}`,
      );
      assert.ok(peekedRefusal.resetMs > 83_000 && peekedRefusal.resetMs <= 84_000);

      // The store's dry run itself: the answer of a charge, and no key.
      const id = `dry:${String(Math.random()).slice(2)}`;
      const dry = await store.checkRateLimits([{ id, intervalMs: 1000, toleranceMs: 2000 }], {
        charge: false,
      });
      assert.equal(dry.admitted, true);
      assert.deepEqual(dry.states, [{ remaining: 2, resetMs: 1000, retryAfterMs: 0 }]);
      const keys = [...(await fixture.dump()).keys()];
      assert.ok(!keys.some((key) => key.includes(id)), 'the dry run wrote no key');
      const charged = await store.checkRateLimits([{ id, intervalMs: 1000, toleranceMs: 2000 }]);
      assert.deepEqual(charged.states, dry.states, 'the charge answers as its dry run did');
    });

    it('peeks made at once with checks see the checks before them, all or nothing per request', async () => {
      const limits = new RateLimits(store, keyRing, { policies: { strict: '1/1m+1', loose: '10/1m' } });
      const user = subject('peek-batch');
      const decisions = await Promise.all([
        limits.check({ strict: user }),
        limits.peek({ strict: user }),
        limits.check({ strict: user }),
        limits.peek({ strict: user, loose: user }),
        limits.peek({ loose: user }),
      ]);
      assert.deepEqual(
        decisions.map((decision) => [decision.allowed, decision.policy, decision.remaining]),
        [
          [true, 'strict', 1],
          [true, 'strict', 0],
          [true, 'strict', 0],
          [false, 'strict', 0],
          [true, 'loose', 9],
        ],
      );
      const loose = await limits.check({ loose: user });
      assert.equal(loose.remaining, 9, 'no peek charged loose');
    });

    it('remembers a refused peek like a refused check, and tells it without a store call', async () => {
      const counting = countingRateLimitCalls(store);
      const limits = new RateLimits(counting.store, keyRing, { policies: { account: '2/15m' } });
      const account = subject('account');
      assert.equal(limits.recentRefusal('account', account), null);
      for (let i = 0; i < 2; i++) assert.equal((await limits.check({ account })).allowed, true);
      assert.equal(limits.recentRefusal('account', account), null, 'spent, but not refused yet');
      assert.equal(counting.calls(), 2);
      const refused = await limits.peek({ account });
      assert.equal(refused.allowed, false);
      assert.equal(counting.calls(), 3);
      const remembered = limits.recentRefusal('account', account);
      assert.ok(remembered && !remembered.allowed && remembered.retryAfterMs > 400_000);
      for (let i = 0; i < 10; i++) {
        assert.equal((await limits.peek({ account })).allowed, false);
        assert.equal((await limits.check({ account })).allowed, false);
      }
      assert.equal(counting.calls(), 3, 'repeat peeks and checks came from memory');
      assert.equal(limits.recentRefusal('account', subject('never-seen')), null);
      assert.equal(counting.calls(), 3, 'recentRefusal never asks the store');
      assert.throws(() => limits.recentRefusal('nope', account), TypeError);
    });

    it('while the store is down: a closed policy refuses a peek, an open one peeks at the local limiter', async () => {
      const other = fixture.otherStore();
      const down = other === store ? new MemoryStore({ keyPrefix: store.keys.prefix }) : other;
      await down.close();
      const limits = new RateLimits(down, keyRing, {
        policies: { auth: '5/1m+2', api: { policy: '4/1m', whenStoreDown: 'open' } },
        expectedInstances: 2,
      });
      const user = subject('peek-down');
      const closed = await limits.peek({ auth: user });
      assert.deepEqual([closed.allowed, closed.reason, closed.degraded], [false, 'store-unavailable', true]);
      for (let i = 0; i < 5; i++) {
        const peeked = await limits.peek({ api: user });
        assert.deepEqual([peeked.allowed, peeked.degraded, peeked.remaining], [true, true, 1]);
      }
      const checks = [];
      for (let i = 0; i < 2; i++) checks.push((await limits.check({ api: user })).allowed);
      assert.deepEqual(checks, [true, true], 'the peeks charged the local limiter nothing');
      const spent = await limits.peek({ api: user });
      assert.deepEqual([spent.allowed, spent.reason, spent.degraded], [false, 'limited', true]);
    });

    it('refuses unknown policies and empty subjects as programming errors', async () => {
      const limits = new RateLimits(store, keyRing, { policies: { api: '100/1m+10' } });
      await assert.rejects(limits.check({ nope: 'x' }), TypeError);
      await assert.rejects(limits.check({ api: '' }), TypeError);
      await assert.rejects(limits.check({}), TypeError);
      await assert.rejects(limits.peek({}), TypeError);
      await assert.rejects(limits.peek({ nope: 'x' }), TypeError);
      assert.throws(() => new RateLimits(store, keyRing, { policies: { api: '100 per minute' } }), TypeError);
    });
  });
}
