/**
 * The sessions and security (CSRF, nonces, revocation) suites on the memory store and
 * standalone Redis (Cluster: store.cluster.test.ts, which runs every suite on one cluster and
 * then checks that every script ran there).
 */
import { after, before, describe } from 'node:test';

import { startStandalone, type AdminClient, type Standalone } from './harness/topologies.js';
import { memorySessionFixture, redisSessionFixture } from './harness/fixtures.js';
import { rateLimitSuite } from './rate-limit-suite.js';
import { securitySuite } from './security-suite.js';
import { sessionSuite } from './sessions-suite.js';

sessionSuite('memory', memorySessionFixture);
securitySuite('memory', memorySessionFixture);
rateLimitSuite('memory', memorySessionFixture);

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
});
