/**
 * Standalone Redis: every behaviour contract; batching seen from the server (INFO commandstats);
 * and RedisStore failing fast and recovering when the server is killed, stalled, restarted, or
 * loses its script cache.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { StoreUnavailableError } from '../../src/errors.js';
import { reconnectDelayMs } from '../../src/store/redis/drivers.js';
import { toStoreError } from '../../src/store/redis/errors.js';
import * as lua from '../../src/store/redis/scripts.generated.js';
import { RedisStore } from '../../src/store/redis/store.js';
import { RedisServer } from '../harness/redis-server.js';
import {
  startStandalone,
  uniquePrefix,
  waitFor,
  type AdminClient,
  type Standalone,
} from '../harness/topologies.js';
import { KeyRing } from '../../src/crypto/keyring.js';
import { Locks } from '../../src/locks/locks.js';
import { RateLimits } from '../../src/rate-limit/rate-limits.js';
import { runContracts } from '../contracts/matrix.js';
import { redisSessionFixture, redisStoreFixture } from '../harness/fixtures.js';

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

  runContracts('redis standalone', {
    store: () => redisStoreFixture(redis.connection, [admin]),
    sessions: () => redisSessionFixture(redis.connection, [admin]),
  });

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

describe('reconnect backoff and error mapping', () => {
  it('grows exponentially from 50 ms to the cap, with jitter in the upper half', () => {
    for (let retries = 0; retries < 40; retries++) {
      const ceiling = Math.min(2000, 50 * 2 ** retries);
      for (let sample = 0; sample < 20; sample++) {
        const delay = reconnectDelayMs(retries, 2000);
        assert.ok(
          delay >= ceiling / 2 - 1 && delay <= ceiling,
          `retry ${String(retries)}: ${String(delay)} ms`,
        );
      }
    }
    const delays = new Set(Array.from({ length: 50 }, () => reconnectDelayMs(10, 2000)));
    assert.ok(delays.size > 10, 'jittered');
  });

  it('maps replies and failures to the catalogue', async () => {
    const { ErrorReply } = await import('redis');
    const reply = (message: string) => toStoreError(new ErrorReply(message)).code;
    assert.equal(
      reply('NOPERM User x has no permissions to run the info command'),
      'GH_ERR_STORE_NOT_PERMITTED',
    );
    assert.equal(
      reply("ERR The user executing the script can't access at least one of the keys"),
      'GH_ERR_STORE_NOT_PERMITTED',
    );
    assert.equal(reply('WRONGPASS invalid username-password pair'), 'GH_ERR_STORE_NOT_PERMITTED');
    assert.equal(reply('LOADING Redis is loading the dataset in memory'), 'GH_ERR_STORE_UNAVAILABLE');
    assert.equal(reply('READONLY You cannot write against a read only replica.'), 'GH_ERR_STORE_UNAVAILABLE');
    assert.equal(reply('CLUSTERDOWN The cluster is down'), 'GH_ERR_STORE_UNAVAILABLE');
    assert.equal(
      reply("OOM command not allowed when used memory > 'maxmemory'."),
      'GH_ERR_STORE_UNAVAILABLE',
    );
    assert.equal(reply('ERR wrong number of arguments'), 'GH_ERR_STORE_COMMAND_FAILED');
    assert.equal(toStoreError(new Error('The client is offline')).code, 'GH_ERR_STORE_UNAVAILABLE');
  });
});

/** Time one call; returns how long it took and what it threw. */
async function timed(call: () => Promise<unknown>): Promise<{ ms: number; error: unknown }> {
  const started = performance.now();
  try {
    await call();
    return { ms: performance.now() - started, error: undefined };
  } catch (error) {
    return { ms: performance.now() - started, error };
  }
}

describe('redis standalone failures', () => {
  let redis: Standalone;
  let store: RedisStore;

  before(async () => {
    redis = await startStandalone();
    store = new RedisStore({ connection: redis.connection, keyPrefix: uniquePrefix() });
    await store.waitUntilReady(5000);
  });

  after(async () => {
    await store.close();
    await redis.destroy();
  });

  it('fails with StoreUnavailableError in under a second when the server is killed, then recovers by itself', async () => {
    await store.probeReadWrite('kill', 'before', 10_000);
    await redis.server.kill();
    for (let i = 0; i < 3; i++) {
      const { ms, error } = await timed(() => store.probeReadWrite('kill', 'during', 10_000));
      assert.ok(
        error instanceof StoreUnavailableError,
        `expected StoreUnavailableError, got ${String(error)}`,
      );
      assert.equal(error.code, 'GH_ERR_STORE_UNAVAILABLE');
      assert.equal(error.httpStatus, 503);
      assert.ok(ms < 1000, `failed after ${ms.toFixed(0)} ms`);
    }
    assert.equal((await store.health()).status, 'down');
    await redis.server.restart();
    // Same store object, no restart: it reconnects by itself (backoff is capped at 2 s).
    await waitFor(
      'the store to reconnect',
      async () => {
        try {
          return (await store.probeReadWrite('kill', 'after', 10_000)).value === 'after';
        } catch {
          return false;
        }
      },
      10_000,
    );
    assert.equal((await store.health()).status, 'up');
  });

  it('times out a stalled server within the command timeout instead of hanging', async () => {
    redis.server.pause();
    try {
      const { ms, error } = await timed(() => store.probeReadWrite('stall', 'v', 10_000));
      assert.ok(
        error instanceof StoreUnavailableError,
        `expected StoreUnavailableError, got ${String(error)}`,
      );
      assert.ok(ms >= 400 && ms < 1000, `timed out after ${ms.toFixed(0)} ms (timeout 500 ms)`);
    } finally {
      redis.server.resume();
    }
    await waitFor('the stalled server to answer again', async () => {
      try {
        return (await store.probeReadWrite('stall', 'after', 10_000)).value === 'after';
      } catch {
        return false;
      }
    });
  });

  it('closes at once while the server is stalled, instead of waiting for overdue replies', async () => {
    const other = new RedisStore({ connection: redis.connection, keyPrefix: uniquePrefix() });
    await other.waitUntilReady(5000);
    redis.server.pause();
    try {
      await assert.rejects(other.probeReadWrite('stall', 'v', 1000), StoreUnavailableError);
      const { ms } = await timed(() => other.close());
      assert.ok(ms < 1500, `closed in ${ms.toFixed(0)} ms`);
      await assert.rejects(other.waitUntilReady(5000), StoreUnavailableError);
    } finally {
      redis.server.resume();
    }
  });

  it('runs its scripts again after SCRIPT FLUSH (NOSCRIPT falls back to EVAL)', async () => {
    await store.probeReadWrite('flush', 'one', 10_000);
    const admin = await redis.admin();
    try {
      const probe = lua.probeReadWrite;
      assert.deepEqual(await admin.scriptExists([probe.sha1]), [1]);
      await admin.scriptFlush();
      assert.deepEqual(await admin.scriptExists([probe.sha1]), [0]);
      assert.equal((await store.probeReadWrite('flush', 'two', 10_000)).value, 'two');
      assert.deepEqual(await admin.scriptExists([probe.sha1]), [1]);
    } finally {
      admin.destroy();
    }
  });

  it('starts while Redis is down: fails fast, then works once Redis comes up, without a new client', async () => {
    const late = await RedisServer.start({ name: 'late' });
    const port = late.port;
    await late.kill();
    const lateStore = new RedisStore({
      connection: { topology: 'standalone', host: '127.0.0.1', port },
      keyPrefix: uniquePrefix(),
    });
    try {
      await assert.rejects(lateStore.waitUntilReady(300), StoreUnavailableError);
      const { ms, error } = await timed(() => lateStore.probeReadWrite('late', 'v', 1000));
      assert.ok(error instanceof StoreUnavailableError);
      assert.ok(ms < 1000, `failed after ${ms.toFixed(0)} ms`);
      await late.restart();
      await lateStore.waitUntilReady(10_000);
      assert.equal((await lateStore.probeReadWrite('late', 'up', 1000)).value, 'up');
    } finally {
      await lateStore.close();
      await late.destroy();
    }
  });

  it('close is idempotent and later calls fail with StoreUnavailableError', async () => {
    const other = new RedisStore({ connection: redis.connection, keyPrefix: uniquePrefix() });
    await other.waitUntilReady(5000);
    await other.close();
    await other.close();
    assert.ok(!other.isReady());
    await assert.rejects(other.probeReadWrite('closed', 'v', 1000), StoreUnavailableError);
  });
});
