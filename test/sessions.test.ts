/**
 * The sessions suite on the memory store and standalone Redis (Cluster: store.cluster.test.ts,
 * which runs every suite on one cluster and then checks that every script ran there).
 */
import { after, before, describe } from 'node:test';

import { MemoryStore } from '../src/store/memory.js';
import { startStandalone, uniquePrefix, type AdminClient, type Standalone } from './harness/topologies.js';
import { redisSessionFixture } from './harness/fixtures.js';
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

  sessionSuite('redis standalone', () => redisSessionFixture(redis.connection, [admin]));
});
