/**
 * Rate-limit benchmarks in one run, one process, one redis-server started here: gatehouse
 * `check` on one policy; raw node-redis sending the very same EVALSHA (checkRateLimits.lua, same
 * key and arguments) with nothing of gatehouse around it; rate-limiter-flexible's
 * `RateLimiterRedis.consume`; and repeat refusals answered from gatehouse's blocked cache. Then
 * the first three again with one call in flight, where gatehouse has nothing to batch.
 */
import { randomUUID } from 'node:crypto';

import { RateLimiterRedis } from 'rate-limiter-flexible';
import { createClient } from '@redis/client';

import { KeyRing } from '../packages/gatehouse/src/crypto/keyring.js';
import { RateLimits } from '../packages/gatehouse/src/rate-limit/rate-limits.js';
import { RedisStore } from '../packages/gatehouse/src/store/redis/store.js';
import * as lua from '../packages/gatehouse/src/store/redis/scripts.generated.js';
import { RedisServer } from '../packages/gatehouse/test/harness/redis-server.js';
import { benchClient } from './clients.js';
import { interleave, redisCpuMs, type ThroughputResult } from './measure.js';

export async function runRateLimitBench(options: {
  rounds: number;
  roundMs: number;
  concurrency: number;
}): Promise<{ throughput: ThroughputResult[]; oneInFlight: ThroughputResult[] }> {
  const server = await RedisServer.start({ name: 'bench-rl' });
  const store = new RedisStore({
    connection: { topology: 'standalone', host: '127.0.0.1', port: server.port },
    keyPrefix: 'gh',
  });
  const raw = benchClient(server.port);
  const flexibleClient = benchClient(server.port);
  // The same peer as its users run it by default: node-redis's 5 s command timeout (one
  // AbortSignal timer per command), the protection gatehouse gets from its deadline sweeper.
  const flexibleDefaultClient = createClient({ socket: { host: '127.0.0.1', port: server.port } });
  try {
    await store.waitUntilReady(5000);
    await raw.connect();
    await flexibleClient.connect();
    await flexibleDefaultClient.connect();
    const keyRing = KeyRing.random();
    // A limit no contender reaches during the run: every call is an admitted, charged check.
    const limits = new RateLimits(store, keyRing, { policies: { api: '100000000/1m' } });
    const subjects = Array.from({ length: 1000 }, () => randomUUID());

    const script = lua.checkRateLimits;
    const intervalMs = Math.ceil(60_000 / 100_000_000);
    const toleranceMs = (100_000_000 - 1) * intervalMs;
    const rawCalls = subjects.map((subject) => ({
      keys: [store.keys.tagged('rl', 'rl', `api:${keyRing.identifier('rate-limit subject', subject, 22)}`)],
      // One charging request of one key, as the script takes it (gatehouse batches several).
      arguments: ['1', '1', '1', String(intervalMs), String(toleranceMs)],
    }));

    const flexible = new RateLimiterRedis({
      storeClient: flexibleClient,
      useRedisPackage: true,
      points: 100_000_000,
      duration: 60,
      keyPrefix: 'rlflx',
    });

    const flexibleDefault = new RateLimiterRedis({
      storeClient: flexibleDefaultClient,
      useRedisPackage: true,
      points: 100_000_000,
      duration: 60,
      keyPrefix: 'rlflxd',
    });

    // Repeat offenders: subjects already refused, answered from the blocked cache.
    const strict = new RateLimits(store, keyRing, { policies: { auth: '1/1h' } });
    const offenders = subjects.slice(0, 100);
    for (const subject of offenders) {
      await strict.check({ auth: subject });
      await strict.check({ auth: subject });
    }

    const at = <T>(list: readonly T[], index: number): T => list[index % list.length] as T;
    const charged = [
      { name: 'gatehouse rateLimits.check', op: (i: number) => limits.check({ api: at(subjects, i) }) },
      {
        name: 'raw node-redis EVALSHA (same rate-limit script)',
        op: (i: number) => raw.evalSha(script.sha1, at(rawCalls, i)),
      },
      { name: 'rate-limiter-flexible consume', op: (i: number) => flexible.consume(at(subjects, i)) },
    ];
    const defaultClient = {
      name: 'rate-limiter-flexible consume, node-redis default command timeout',
      op: (i: number) => flexibleDefault.consume(at(subjects, i)),
    };
    const throughput = await interleave(
      [
        ...charged,
        defaultClient,
        {
          name: 'gatehouse repeat refusal (blocked cache)',
          op: (i) => strict.check({ auth: at(offenders, i) }),
        },
      ],
      options,
      () => redisCpuMs(() => raw.info('cpu')),
    );
    const oneInFlight = await interleave(charged, { ...options, concurrency: 1 });
    return { throughput, oneInFlight };
  } finally {
    raw.destroy();
    flexibleClient.destroy();
    flexibleDefaultClient.destroy();
    await store.close();
    await server.destroy();
  }
}
