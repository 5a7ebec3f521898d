/**
 * RedisStore on a standalone server: the store contract, and failing fast and recovering when
 * the server is killed, stalled, restarted, or loses its script cache.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { StoreUnavailableError } from '../src/errors.js';
import { reconnectDelayMs } from '../src/store/redis/drivers.js';
import { toStoreError } from '../src/store/redis/errors.js';
import * as lua from '../src/store/redis/scripts.generated.js';
import { RedisStore } from '../src/store/redis/store.js';
import { RedisServer } from './harness/redis-server.js';
import {
  redisInspector,
  startStandalone,
  uniquePrefix,
  waitFor,
  type Standalone,
} from './harness/topologies.js';
import { storeSuite } from './store-suite.js';

storeSuite('redis standalone', async () => {
  const redis = await startStandalone();
  const prefix = uniquePrefix();
  const admin = await redis.admin();
  return {
    store: new RedisStore({ connection: redis.connection, keyPrefix: prefix }),
    inspector: redisInspector([admin], prefix),
    teardown: async () => {
      admin.destroy();
      await redis.destroy();
    },
  };
});

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
