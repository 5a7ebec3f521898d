/**
 * The sessions suite on the memory store and standalone Redis (Cluster: store.cluster.test.ts,
 * which runs every suite on one cluster and then checks that every script ran there).
 */
import { after, before, describe } from 'node:test';

import { MemoryStore } from '../src/store/memory.js';
import { RedisStore } from '../src/store/redis.js';
import {
  dumpKeys,
  redisInspector,
  startStandalone,
  uniquePrefix,
  type AdminClient,
  type Standalone,
} from './harness/topologies.js';
import { sessionSuite } from './sessions-suite.js';

sessionSuite('memory', () => {
  const store = new MemoryStore({ keyPrefix: uniquePrefix() });
  return Promise.resolve({
    store,
    otherStore: () => store,
    dump: () => Promise.resolve(store.snapshotValues()),
    keysWithoutTtl: () =>
      Promise.resolve([...store.snapshotTtls()].filter(([, ttl]) => !(ttl > 0)).map(([key]) => key)),
    teardown: () => Promise.resolve(),
  });
});

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

  sessionSuite('redis standalone', () => {
    const prefix = uniquePrefix();
    return Promise.resolve({
      store: new RedisStore({ connection: redis.connection, keyPrefix: prefix }),
      otherStore: () => new RedisStore({ connection: redis.connection, keyPrefix: prefix }),
      dump: () => dumpKeys([admin], prefix),
      keysWithoutTtl: () => redisInspector([admin], prefix).keysWithoutTtl(),
      teardown: () => Promise.resolve(),
    });
  });
});
