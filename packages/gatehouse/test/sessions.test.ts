/**
 * The sessions and security (CSRF, nonces, revocation) suites on the memory store and
 * standalone Redis (Cluster: store.cluster.test.ts, which runs every suite on one cluster and
 * then checks that every script ran there).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  startStandalone,
  uniquePrefix,
  waitFor,
  type AdminClient,
  type Standalone,
} from './harness/topologies.js';
import { memorySessionFixture, redisSessionFixture } from './harness/fixtures.js';
import { KeyRing } from '../src/crypto/keyring.js';
import { Locks } from '../src/locks/locks.js';
import { RateLimits } from '../src/rate-limit/rate-limits.js';
import { RedisStore } from '../src/store/redis/store.js';
import { lockSuite } from './lock-suite.js';
import { rateLimitSuite } from './rate-limit-suite.js';
import { securitySuite } from './security-suite.js';
import { sessionSuite } from './sessions-suite.js';

sessionSuite('memory', memorySessionFixture);
securitySuite('memory', memorySessionFixture);
rateLimitSuite('memory', memorySessionFixture);
lockSuite('memory', memorySessionFixture);

describe('redis standalone', () => {
  let redis: Standalone;
  let admin: AdminClient;
  before(async () => {
    redis = await startStandalone();
    admin = await redis.admin();
  });
  after(async () => {
    admin.destroy();
    await redis.destroy();
  });

  sessionSuite('redis standalone', () => redisSessionFixture(redis.connection, [admin]));
  securitySuite('redis standalone', () => redisSessionFixture(redis.connection, [admin]));
  rateLimitSuite('redis standalone', () => redisSessionFixture(redis.connection, [admin]));
  lockSuite('redis standalone', () => redisSessionFixture(redis.connection, [admin]));

  it('rate limits: checks made at once share script calls, 64 to a call (INFO commandstats)', async () => {
    const store = new RedisStore({ connection: redis.connection, keyPrefix: uniquePrefix() });
    try {
      await store.waitUntilReady(5000);
      const limits = new RateLimits(store, KeyRing.random(), { policies: { api: '100/1m' } });
      const before = await scriptCalls(admin);
      const decisions = await Promise.all(
        Array.from({ length: 150 }, (_, i) => limits.check({ api: `user-${String(i % 75)}` })),
      );
      assert.equal(await scriptCalls(admin), before + 3, '150 checks in 3 calls: 64 + 64 + 22');
      // Each of 75 users checked twice: the second call saw the first one's charge.
      assert.deepEqual(
        decisions.map((decision) => decision.remaining),
        Array.from({ length: 150 }, (_, i) => (i < 75 ? 99 : 98)),
      );
    } finally {
      await store.close();
    }
  });

  it('locks: acquires and releases made at once share script calls (INFO commandstats)', async () => {
    const store = new RedisStore({ connection: redis.connection, keyPrefix: uniquePrefix() });
    try {
      await store.waitUntilReady(5000);
      const locks = new Locks(store, KeyRing.random());
      const before = await scriptCalls(admin);
      const held = await Promise.all(
        Array.from({ length: 40 }, (_, i) => locks.tryAcquire(`pdf:${String(i)}`)),
      );
      const released = await Promise.all(
        held.map((lock) => (lock.acquired ? lock.release() : Promise.resolve(false))),
      );
      assert.deepEqual(
        released,
        Array.from({ length: 40 }, () => true),
      );
      assert.equal(await scriptCalls(admin), before + 2, '40 acquires in one call, 40 releases in one');
    } finally {
      await store.close();
    }
  });

  it('rate limits: repeat refusals send no command to Redis (INFO commandstats)', async () => {
    const store = new RedisStore({ connection: redis.connection, keyPrefix: uniquePrefix() });
    try {
      await store.waitUntilReady(5000);
      const limits = new RateLimits(store, KeyRing.random(), { policies: { auth: '5/1m+2' } });
      for (let i = 0; i < 8; i++) await limits.check({ auth: '198.51.100.7' });
      const before = await scriptCalls(admin);
      for (let i = 0; i < 50; i++)
        assert.equal((await limits.check({ auth: '198.51.100.7' })).allowed, false);
      assert.equal(await scriptCalls(admin), before, 'no script ran for the 50 repeat refusals');
    } finally {
      await store.close();
    }
  });
});

/** Scripts Redis has run so far (EVALSHA and EVAL), from INFO commandstats. */
async function scriptCalls(admin: AdminClient): Promise<number> {
  const stats = await admin.info('commandstats');
  return [...stats.matchAll(/cmdstat_(?:evalsha|eval):calls=(\d+)/g)].reduce(
    (sum, match) => sum + Number(match[1]),
    0,
  );
}

describe('rate limits while Redis is killed and restarted', () => {
  it('open policies admit through the local limiter marked degraded, closed ones refuse; then recover', async () => {
    const redis = await startStandalone();
    const store = new RedisStore({ connection: redis.connection, keyPrefix: uniquePrefix() });
    try {
      await store.waitUntilReady(5000);
      const limits = new RateLimits(store, KeyRing.random(), {
        policies: { auth: '5/1m+2', api: { policy: '6/1m', whenStoreDown: 'open' } },
        expectedInstances: 3,
      });
      const before = await limits.check({ api: 'user-1' });
      assert.deepEqual([before.allowed, before.degraded, before.remaining], [true, false, 5]);

      await redis.server.kill();
      const closed = await limits.check({ auth: '203.0.113.9' });
      assert.deepEqual([closed.allowed, closed.reason, closed.degraded], [false, 'store-unavailable', true]);
      assert.equal(limits.degraded, true);
      const open = [];
      for (let i = 0; i < 4; i++) open.push(await limits.check({ api: 'user-1' }));
      assert.deepEqual(
        open.map((decision) => [decision.allowed, decision.degraded]),
        [
          [true, true],
          [true, true],
          [false, true],
          [false, true],
        ],
        'each of 3 instances admits its third of 6',
      );

      await redis.server.restart();
      await waitFor(
        'rate limits back on Redis',
        async () => !(await limits.check({ api: 'user-2' })).degraded,
      );
      assert.equal(limits.degraded, false);
      const after = await limits.check({ auth: '203.0.113.9' });
      assert.deepEqual([after.allowed, after.degraded], [true, false]);
    } finally {
      await store.close();
      await redis.destroy();
    }
  });
});
