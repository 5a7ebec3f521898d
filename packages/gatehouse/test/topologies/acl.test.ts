/**
 * RedisStore as a least-privilege ACL user (the rule from src/store/acl.ts: its prefix, its
 * commands, nothing in @dangerous): enough for every operation, and refused where it should be.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { StorePermissionError } from '../../src/errors.js';
import { aclRule } from '../../src/store/acl.js';
import { RedisStore } from '../../src/store/redis/store.js';
import {
  ACL_APP,
  startAclServer,
  uniquePrefix,
  type AdminClient,
  type Standalone,
} from '../harness/topologies.js';
import { runContracts } from '../contracts/matrix.js';
import { redisSessionFixture, redisStoreFixture } from '../harness/fixtures.js';

describe('redis with a least-privilege ACL user', () => {
  const prefix = uniquePrefix();
  let redis: Standalone;
  let admin: AdminClient;

  before(async () => {
    redis = await startAclServer(prefix);
    admin = await redis.admin();
  });

  after(async () => {
    admin.destroy();
    await redis.destroy();
  });

  runContracts('redis ACL user', {
    store: () => redisStoreFixture(redis.connection, [admin], prefix),
    sessions: () => redisSessionFixture(redis.connection, [admin], prefix),
  });

  it('connects as the app user and the default user is off', async () => {
    const defaultUser = await admin.aclGetUser('default');
    assert.ok(defaultUser?.flags.includes('off'), 'default user is off');
    const store = new RedisStore({ connection: redis.connection, keyPrefix: prefix });
    try {
      await store.waitUntilReady(5000);
      const clients = await admin.clientList();
      assert.ok(clients.some((client) => client.user === ACL_APP.username));
    } finally {
      await store.close();
    }
  });

  it('denies the app user dangerous commands, other keys and other channels', async () => {
    const dryRun = async (...command: string[]) =>
      admin.sendCommand<string>(['ACL', 'DRYRUN', ACL_APP.username, ...command]);
    for (const command of [
      ['FLUSHALL'],
      ['CONFIG', 'GET', '*'],
      ['KEYS', '*'],
      ['DEBUG', 'SLEEP', '0'],
      ['INFO'],
    ]) {
      assert.match(await dryRun(...command), /no permissions/i, `${command.join(' ')} is denied`);
    }
    assert.match(await dryRun('GET', 'other:key'), /no permissions/i);
    assert.equal(await dryRun('GET', `${prefix}:health.v1:probe:x`), 'OK');
    assert.match(await dryRun('PUBLISH', 'other-channel', 'x'), /no permissions/i);
    assert.doesNotMatch(aclRule(prefix), /@dangerous|\+@all|allkeys|allchannels|~\*/);
  });

  it('reports INFO as not permitted in health, without failing', async () => {
    const store = new RedisStore({ connection: redis.connection, keyPrefix: prefix });
    try {
      await store.waitUntilReady(5000);
      const health = await store.health();
      assert.equal(health.status, 'up');
      assert.equal(health.nodes[0]?.info, 'not-permitted');
      assert.equal(typeof health.latencyMs, 'number');
    } finally {
      await store.close();
    }
  });

  it('reports a key outside the ACL pattern inside a script as a permission error, not an outage', async () => {
    const store = new RedisStore({ connection: redis.connection, keyPrefix: uniquePrefix() });
    try {
      await store.waitUntilReady(5000);
      await assert.rejects(store.probeReadWrite('p', 'v', 1000), (error: unknown) => {
        assert.ok(error instanceof StorePermissionError, String(error));
        assert.equal(error.code, 'GH_ERR_STORE_NOT_PERMITTED');
        return true;
      });
    } finally {
      await store.close();
    }
  });

  it('reports a wrong password as a permission error, not as Redis being down', async () => {
    const store = new RedisStore({
      connection: { ...redis.connection, password: 'not-the-password' },
      keyPrefix: prefix,
    });
    try {
      await assert.rejects(store.waitUntilReady(500));
      await assert.rejects(store.probeReadWrite('p', 'v', 1000), (error: unknown) => {
        assert.ok(error instanceof StorePermissionError, String(error));
        assert.doesNotMatch(error.message, /not-the-password/);
        return true;
      });
    } finally {
      await store.close();
    }
  });
});
