/**
 * The reference service against API.md on the embedded defaults (memory store, PGlite), on
 * standalone Redis with PostgreSQL, and on a 3-primary Redis Cluster with PGlite.
 */
import { after, before, describe } from 'node:test';

import {
  adminClient,
  dumpKeys,
  redisInspector,
  startCluster,
  startStandalone,
  uniquePrefix,
  type AdminClient,
  type Cluster,
  type Standalone,
} from './harness/topologies.js';
import { serviceSuite } from './service/suite.js';
import { createTestDatabase, startService } from './service/start.js';

const COMMON = { ADMIN_EMAILS: 'admin@clinic.example' };

serviceSuite('memory store, PGlite, secure cookies', {
  secureCookies: true,
  start: () => startService({ ...COMMON, COOKIE_SECURE: 'true' }),
});

describe('on standalone Redis with PostgreSQL', () => {
  let redis: Standalone;
  let admin: AdminClient;
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  const prefix = uniquePrefix();
  before(async () => {
    redis = await startStandalone();
    admin = await redis.admin();
    database = await createTestDatabase();
  });
  after(async () => {
    await admin.close();
    await redis.destroy();
    await database.drop();
  });
  serviceSuite('standalone Redis, PostgreSQL', {
    secureCookies: false,
    start: () =>
      startService({
        ...COMMON,
        REDIS_URL: `redis://127.0.0.1:${String(redis.server.port)}`,
        REDIS_KEY_PREFIX: prefix,
        DATABASE_URL: database.url,
      }),
    redisDump: async () => ({
      keysWithoutTtl: await redisInspector([admin], prefix).keysWithoutTtl(),
      values: await dumpKeys([admin], prefix),
    }),
  });
});

describe('on a Redis Cluster with PGlite', () => {
  let cluster: Cluster;
  let admins: AdminClient[] = [];
  const prefix = uniquePrefix();
  before(async () => {
    cluster = await startCluster();
    admins = await Promise.all((await cluster.primaryPorts()).map((port) => adminClient(port)));
  });
  after(async () => {
    await Promise.all(admins.map((client) => client.close()));
    await cluster.destroy();
  });
  serviceSuite('Redis Cluster, PGlite', {
    secureCookies: false,
    start: () =>
      startService({
        ...COMMON,
        REDIS_CLUSTER_NODES: cluster.connection.nodes
          .map((node) => `127.0.0.1:${String(node.port)}`)
          .join(','),
        REDIS_KEY_PREFIX: prefix,
      }),
    redisDump: async () => ({
      keysWithoutTtl: await redisInspector(admins, prefix).keysWithoutTtl(),
      values: await dumpKeys(admins, prefix),
    }),
  });
});
