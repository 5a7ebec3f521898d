/**
 * The reference service suite (suite.ts: the HTTP contract, docs/http-api.md) on the embedded
 * defaults (memory store, PGlite), on standalone Redis with PostgreSQL, and on a 3-primary Redis
 * Cluster with PGlite; and event streams that end by the session limit and the idle timeout.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

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
} from '../../../gatehouse/test/harness/topologies.js';
import { Client, freshEmail, readEvents } from '../helpers/client.js';
import { createTestDatabase, startService } from '../helpers/start-service.js';
import { serviceSuite } from './suite.js';

serviceSuite('memory store, PGlite, secure cookies', {
  secureCookies: true,
  start: () => startService({ COOKIE_SECURE: 'true' }),
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

describe(
  'event streams end with the reason: the session limit and the idle timeout',
  { timeout: 120_000 },
  () => {
    let running: Awaited<ReturnType<typeof startService>>;
    before(async () => {
      running = await startService({ SESSION_IDLE_TIMEOUT: '2s', SESSION_MAX_PER_USER: '1' });
    });
    after(async () => {
      await running.close();
    });

    it('sends limit when a newer sign-in evicts the session, and timeout when it lapses', async () => {
      const email = freshEmail();
      const first = new Client(running.base);
      await first.signUp(email);
      await first.signIn(email);
      const evicted = await readEvents(
        `${running.base}/api/v1/events`,
        { authorization: `Bearer ${String(first.sessionToken)}`, 'x-forwarded-for': first.ip },
        async () => {
          await new Client(running.base).signIn(email);
        },
        5000,
      );
      assert.match(evicted.text, /event: session-ended\ndata: \{"reason":"limit"\}/);
      assert.ok(evicted.elapsedMs < 1000);

      const idle = new Client(running.base);
      await idle.signIn(email);
      const started = Date.now();
      const lapsed = await readEvents(
        `${running.base}/api/v1/events`,
        { authorization: `Bearer ${String(idle.sessionToken)}`, 'x-forwarded-for': idle.ip },
        () => Promise.resolve(),
        8000,
      );
      assert.match(lapsed.text, /event: session-ended\ndata: \{"reason":"timeout"\}/);
      const closedAfterMs = Date.now() - started;
      assert.ok(closedAfterMs >= 1900 && closedAfterMs < 3200, `closed after ${String(closedAfterMs)} ms`);
      assert.equal((await idle.get('/api/v1/me', { as: 'session-bearer' })).status, 401);
    });
  },
);
