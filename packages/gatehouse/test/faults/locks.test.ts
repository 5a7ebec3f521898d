/**
 * Locks against failures a shared suite cannot stage: a Redis restart while a lock is held, and
 * a process that must exit by itself after withLock calls of every outcome.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';

import { KeyRing } from '../../src/crypto/keyring.js';
import { LockLostError } from '../../src/errors.js';
import { Locks } from '../../src/locks/locks.js';
import { RedisStore } from '../../src/store/redis/store.js';
import { startStandalone, uniquePrefix, type Standalone } from '../harness/topologies.js';
import { TYPESCRIPT_NODE_ARGS } from '../harness/typescript.js';

const run = promisify(execFile);

describe('locks on a Redis that fails', () => {
  let redis: Standalone;
  before(async () => {
    redis = await startStandalone();
  });
  after(async () => {
    await redis.destroy();
  });

  it(
    'Redis restarted without its data while a lock is held: the holder learns it lost the lock',
    { timeout: 30_000 },
    async () => {
      const store = new RedisStore({ connection: redis.connection, keyPrefix: uniquePrefix() });
      try {
        await store.waitUntilReady(5000);
        const locks = new Locks(store, KeyRing.random());
        let oldToken = 0;
        let reason: unknown;
        await assert.rejects(
          locks.withLock(
            'pdf:restart',
            async ({ signal, fencingToken }) => {
              oldToken = fencingToken;
              await redis.server.kill();
              await redis.server.restart();
              await new Promise<void>((resolve) => {
                if (signal.aborted) resolve();
                signal.addEventListener('abort', () => {
                  resolve();
                });
              });
              reason = signal.reason;
            },
            { ttl: '1500ms' },
          ),
          LockLostError,
        );
        assert.ok(reason instanceof LockLostError);
        assert.ok(['not-held', 'store-unavailable'].includes(reason.reason), reason.reason);
        await store.waitUntilReady(5000);
        const next = await locks.tryAcquire('pdf:restart');
        assert.ok(next.acquired);
        assert.ok(next.fencingToken > oldToken, 'fencing tokens still grow after the data was lost');
        await next.release();
      } finally {
        await store.close();
      }
    },
  );

  for (const where of ['memory', 'redis'] as const) {
    it(`leaves no timer behind: a process using withLock exits by itself (${where})`, async () => {
      const { stdout } = await run(
        process.execPath,
        [...TYPESCRIPT_NODE_ARGS, new URL('../programs/locks-exit.ts', import.meta.url).pathname],
        {
          env: { ...process.env, REDIS_PORT: where === 'redis' ? String(redis.server.port) : '' },
          timeout: 60_000,
        },
      );
      assert.equal(stdout.trim(), 'succeeded,refused,threw,lost,aborted');
    });
  }
});
