/**
 * RedisStore through Sentinel: the store contract on the current primary, and a failover
 * (primary killed) followed within 15 seconds without restarting the client.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { RedisStore } from '../../src/store/redis/store.js';
import {
  adminClient,
  startSentinelSet,
  uniquePrefix,
  waitFor,
  type AdminClient,
  type SentinelSet,
} from '../harness/topologies.js';
import { runContracts } from '../contracts/matrix.js';
import { redisSessionFixture, redisStoreFixture } from '../harness/fixtures.js';

describe('redis sentinel', () => {
  let set: SentinelSet;
  let admin: AdminClient;

  before(async () => {
    set = await startSentinelSet();
    admin = await adminClient(set.primary.port);
  });

  after(async () => {
    admin.destroy();
    await set.destroy();
  });

  runContracts('redis sentinel', {
    store: () => redisStoreFixture(set.connection, [admin]),
    sessions: () => redisSessionFixture(set.connection, [admin]),
  });

  it('follows a failover to the promoted replica within 15 seconds', async () => {
    const store = new RedisStore({ connection: set.connection, keyPrefix: uniquePrefix() });
    try {
      await store.waitUntilReady(5000);
      assert.equal((await store.health()).nodes[0]?.address, `127.0.0.1:${String(set.primary.port)}`);
      await store.probeReadWrite('failover', 'before', 60_000);
      const killedAt = Date.now();
      await set.primary.kill();
      await waitFor(
        'a write on the new primary',
        async () => {
          try {
            return (await store.probeReadWrite('failover', 'after', 60_000)).value === 'after';
          } catch {
            return false;
          }
        },
        15_000,
      );
      const tookMs = Date.now() - killedAt;
      assert.ok(tookMs < 15_000, `followed the failover in ${String(tookMs)} ms`);
      assert.equal(await set.currentPrimaryPort(), set.replica.port);
      assert.equal((await store.health()).nodes[0]?.address, `127.0.0.1:${String(set.replica.port)}`);
    } finally {
      await store.close();
    }
  });
});
