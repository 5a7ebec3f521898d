/**
 * Lock benchmarks in one run, one process, one redis-server started here: acquire + release
 * pairs for gatehouse (`tryAcquire` then `release`), raw node-redis sending the very same two
 * EVALSHAs (acquireLock.lua, releaseLock.lua, one lock each) with nothing of
 * gatehouse around them, and redlock (v5, on ioredis, one Redis, no retries). Two more rows
 * measure the drivers themselves: two GETs in a row on node-redis and on ioredis.
 */
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';

import { Redis } from 'ioredis';

import { KeyRing } from '../packages/gatehouse/src/crypto/keyring.js';
import { Locks } from '../packages/gatehouse/src/locks/locks.js';
import { RedisStore } from '../packages/gatehouse/src/store/redis/store.js';
import * as lua from '../packages/gatehouse/src/store/redis/scripts.generated.js';
import { FENCE_TTL_EXTRA_MS } from '../packages/gatehouse/src/store/store.js';
import { recordId } from '../packages/gatehouse/src/util/tokens.js';
import { RedisServer } from '../packages/gatehouse/test/harness/redis-server.js';
import { benchClient } from './clients.js';
import { interleave, redisCpuMs, type ThroughputResult } from './measure.js';

/** The part of redlock 5 used here (its package exports leave its own types unreachable). */
interface RedlockClient {
  acquire(resources: string[], durationMs: number): Promise<{ release(): Promise<unknown> }>;
}
type RedlockConstructor = new (clients: Redis[], settings: { retryCount: number }) => RedlockClient;
const Redlock = (createRequire(import.meta.url)('redlock') as { default: RedlockConstructor }).default;

export async function runLockBench(options: {
  rounds: number;
  roundMs: number;
  concurrency: number;
}): Promise<ThroughputResult[]> {
  const server = await RedisServer.start({ name: 'bench-lock' });
  const store = new RedisStore({
    connection: { topology: 'standalone', host: '127.0.0.1', port: server.port },
    keyPrefix: 'gh',
  });
  const raw = benchClient(server.port);
  const ioredis = new Redis({ host: '127.0.0.1', port: server.port, lazyConnect: true });
  try {
    await store.waitUntilReady(5000);
    await raw.connect();
    await ioredis.connect();
    const keyRing = KeyRing.random();
    const locks = new Locks(store, keyRing);
    const ttlMs = 30_000;
    // 1,000 resources round-robin: with 64 in flight a resource is free again long before reuse.
    const resources = Array.from({ length: 1000 }, (_, i) => `pdf:response-${String(i)}`);

    const acquire = lua.acquireLock;
    const release = lua.releaseLock;
    const rawCalls = resources.map((resource) => {
      const id = keyRing.identifier('lock resource', resource, 22);
      const owner = recordId(randomBytes(16).toString('base64url'));
      return {
        acquire: {
          keys: [store.keys.tagged('lock', id, 'm'), store.keys.tagged('lock', id, 'f')],
          // One lock per call, as the scripts take it (gatehouse batches several).
          arguments: ['1', owner, String(ttlMs), '', String(ttlMs + FENCE_TTL_EXTRA_MS)],
        },
        release: { keys: [store.keys.tagged('lock', id, 'm')], arguments: [owner] },
      };
    });

    const redlock = new Redlock([ioredis], { retryCount: 0 });

    const at = <T>(list: readonly T[], index: number): T => list[index % list.length] as T;
    return await interleave(
      [
        {
          name: 'gatehouse tryAcquire + release',
          op: async (i) => {
            const lock = await locks.tryAcquire(at(resources, i), { ttl: ttlMs });
            if (!lock.acquired || !(await lock.release())) throw new Error('lock not acquired and released');
          },
        },
        {
          name: 'raw node-redis EVALSHA acquire + release (same scripts)',
          op: async (i) => {
            const call = at(rawCalls, i);
            await raw.evalSha(acquire.sha1, call.acquire);
            await raw.evalSha(release.sha1, call.release);
          },
        },
        {
          name: 'redlock acquire + release',
          op: async (i) => {
            const lock = await redlock.acquire([at(resources, i)], ttlMs);
            await lock.release();
          },
        },
        {
          name: 'driver: node-redis GET + GET',
          op: async (i) => {
            await raw.get(at(resources, i));
            await raw.get(at(resources, i));
          },
        },
        {
          name: 'driver: ioredis GET + GET',
          op: async (i) => {
            await ioredis.get(at(resources, i));
            await ioredis.get(at(resources, i));
          },
        },
      ],
      options,
      () => redisCpuMs(() => raw.info('cpu')),
    );
  } finally {
    raw.destroy();
    ioredis.disconnect();
    await store.close();
    await server.destroy();
  }
}
