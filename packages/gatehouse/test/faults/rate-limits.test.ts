/**
 * Rate limits while Redis is killed and restarted: open policies admit through the per-process
 * limiter, closed ones refuse, and both return to Redis by themselves.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { KeyRing } from '../../src/crypto/keyring.js';
import { RateLimits } from '../../src/rate-limit/rate-limits.js';
import { RedisStore } from '../../src/store/redis/store.js';
import { startStandalone, uniquePrefix, waitFor } from '../harness/topologies.js';

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
