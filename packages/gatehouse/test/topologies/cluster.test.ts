/**
 * RedisStore on a 3-primary Redis Cluster with one replica each: the store contract, the
 * sessions suite, every shipped Lua script run on the Cluster, and health over every primary.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { RedisStore } from '../../src/store/redis/store.js';
import { LUA_SCRIPTS } from '../../src/store/redis/scripts.generated.js';
import { keySlot } from '../../src/store/slot.js';
import {
  adminClient,
  startCluster,
  uniquePrefix,
  type AdminClient,
  type Cluster,
} from '../harness/topologies.js';
import { runContracts } from '../contracts/matrix.js';
import { redisSessionFixture, redisStoreFixture } from '../harness/fixtures.js';

describe('redis cluster', () => {
  let cluster: Cluster;
  let admins: AdminClient[];

  before(async () => {
    cluster = await startCluster();
    admins = await Promise.all((await cluster.primaryPorts()).map((port) => adminClient(port)));
  });

  after(async () => {
    for (const admin of admins) admin.destroy();
    await cluster.destroy();
  });

  runContracts('redis cluster', {
    store: () => redisStoreFixture(cluster.connection, admins),
    sessions: () => redisSessionFixture(cluster.connection, admins),
  });

  it('computes hash slots as the cluster does (batches are grouped by slot)', async () => {
    const keys = [
      'foo',
      'bar',
      '123456789',
      'gh:lock.v1:{AbC-_9}:m',
      '{user1000}.following',
      'a{}b',
      '{}{x}',
      'é{ü}',
    ];
    for (let i = 0; i < 50; i++) keys.push(`gh:lock.v1:{${String(Math.random()).slice(2)}}:f`);
    for (const key of keys) assert.equal(keySlot(key), await admins[0]?.clusterKeySlot(key), key);
  });

  // After every suite above ran on this cluster.
  it('spreads keys over the primaries and runs every shipped script there', async () => {
    const store = new RedisStore({ connection: cluster.connection, keyPrefix: uniquePrefix() });
    try {
      await store.waitUntilReady(5000);
      for (let i = 0; i < 30; i++) await store.probeReadWrite(`spread-${String(i)}`, 'v', 60_000);
      const perNode = await Promise.all(admins.map((admin) => admin.dbSize()));
      assert.equal(perNode.filter((count) => count > 0).length, 3, `keys per primary: ${perNode.join(', ')}`);
      // Every script (one per .lua file: packages/gatehouse/test/unit/lua.test.ts) is cached on some primary.
      assert.ok(LUA_SCRIPTS.length > 0);
      for (const script of LUA_SCRIPTS) {
        const cached = await Promise.all(admins.map((admin) => admin.scriptExists([script.sha1])));
        assert.ok(
          cached.some(([exists]) => exists === 1),
          `${script.name} ran on the cluster`,
        );
      }
    } finally {
      await store.close();
    }
  });

  it('reports health for each of the three primaries', async () => {
    const store = new RedisStore({ connection: cluster.connection, keyPrefix: uniquePrefix() });
    try {
      await store.waitUntilReady(5000);
      const health = await store.health();
      assert.equal(health.status, 'up');
      assert.equal(health.mode, 'cluster');
      assert.equal(health.nodes.length, 3);
      for (const node of health.nodes) {
        assert.equal(node.status, 'up');
        assert.ok(
          typeof node.info === 'object' && node.info.role === 'master',
          `${node.address} is a primary`,
        );
      }
    } finally {
      await store.close();
    }
  });
});

describe('redis cluster with a least-privilege ACL user', () => {
  const prefix = uniquePrefix();
  let cluster: Cluster;
  let admins: AdminClient[];

  before(async () => {
    cluster = await startCluster({ aclPrefix: prefix });
    admins = await Promise.all(
      (await cluster.primaryPorts()).map((port) => adminClient(port, cluster.admin)),
    );
  });

  after(async () => {
    for (const admin of admins) admin.destroy();
    await cluster.destroy();
  });

  // The ACL settings must reach every discovered node (node-redis `defaults`), or this hangs.
  runContracts('redis cluster, ACL user', {
    store: () => redisStoreFixture(cluster.connection, admins, prefix),
  });
});
