/**
 * Proof under faults: the reference service under load while its Redis fails over.
 * On Sentinel the primary is killed and the replica promoted; on Cluster one primary is killed
 * and its replica takes its slots. Client loops sign in, validate sessions, take, renew, write
 * and release the fenced edit locks of shared forms and spend public-form nonces the whole time,
 * and every answer is recorded with its time. Afterwards the record must show:
 *
 * - errors only inside a bounded failover window, and only 503 SERVICE_UNAVAILABLE: never a 500,
 *   never a 401 for a valid durable session (those validate from SQL meanwhile);
 * - full recovery without a restart: sign-in, validation, locks and nonces work again;
 * - every durable session signed in before or during the run is still valid;
 * - no two holders of one lock at once that the fencing tokens do not tell apart: tokens grow
 *   strictly in acquire order per form, no holder is confirmed (renewed or written) after a newer
 *   acquire, and the database refuses a write under an older token.
 *
 * Asynchronous replication may lose the last writes of a killed primary (Redis acknowledges a
 * write before its replica has it): a lock taken before the kill may vanish (its holder then gets
 * 409 LOCKED), a nonce issued just before the kill may be unknown afterwards (409 NONCE_INVALID).
 * Both are counted as "lost" and allowed only for locks taken and nonces issued before the window
 * closed. An acquire that answered 503 may still have taken its lock (Sentinel clients hold
 * commands through a failover and run them on the new primary): gatehouse gives such a lock back
 * once Redis answers, which the last test shows on its own.
 *
 * The load is in failover-load.ts, the checks of the record in failover-proof.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { KeyRing } from '../../../gatehouse/src/crypto/keyring.js';
import { StoreUnavailableError } from 'gatehouse';
import { Locks } from '../../../gatehouse/src/locks/locks.js';
import { MemoryStore } from '../../../gatehouse/src/store/memory/store.js';
import type { LockAcquireResult } from '../../../gatehouse/src/store/store.js';
import type { RedisServer } from '../../../gatehouse/test/harness/redis-server.js';
import {
  redisCli,
  SENTINEL_NAME,
  startCluster,
  startSentinelSet,
  uniquePrefix,
  waitFor,
  type Cluster,
  type SentinelSet,
} from '../../../gatehouse/test/harness/topologies.js';
import { createTestDatabase, startService, type RunningService } from '../helpers/start-service.js';
import { proveFailover } from './failover-proof.js';

function serviceEnv(databaseUrl: string): Record<string, string> {
  return {
    REDIS_KEY_PREFIX: uniquePrefix(),
    DATABASE_URL: databaseUrl,
    SESSION_DURABLE: 'true',
    // The loops sign in and call far more often than one user's defaults allow.
    SESSION_MAX_PER_USER: '1000',
    RATE_LIMIT_AUTH: '100000/1m+1000',
    RATE_LIMIT_API: '100000/1m+1000',
    RATE_LIMIT_PUBLIC: '100000/1m+1000',
  };
}

describe('Sentinel failover under load', { timeout: 120_000 }, () => {
  let set: SentinelSet;
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let running: RunningService;

  before(async () => {
    [set, database] = await Promise.all([startSentinelSet(), createTestDatabase()]);
    running = await startService({
      ...serviceEnv(database.url),
      REDIS_SENTINELS: set.connection.sentinels.map((node) => `${node.host}:${String(node.port)}`).join(','),
      REDIS_SENTINEL_NAME: SENTINEL_NAME,
    });
  });

  after(async () => {
    await running.close();
    await set.destroy();
    await database.drop();
  });

  it('answers only 503 within the window, recovers, keeps every session, and fences every lock', async (t) => {
    await proveFailover(t, running, () =>
      Promise.resolve({
        kill: () => set.primary.kill(),
        promoted: async () => (await set.currentPrimaryPort()) === set.replica.port,
      }),
    );
  });
});

describe('Cluster primary killed under load', { timeout: 120_000 }, () => {
  let cluster: Cluster;
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let running: RunningService;

  before(async () => {
    [cluster, database] = await Promise.all([startCluster(), createTestDatabase()]);
    running = await startService({
      ...serviceEnv(database.url),
      REDIS_CLUSTER_NODES: cluster.connection.nodes
        .map((node) => `${node.host}:${String(node.port)}`)
        .join(','),
    });
  });

  after(async () => {
    await running.close();
    await cluster.destroy();
    await database.drop();
  });

  it('answers only 503 within the window, recovers, keeps every session, and fences every lock', async (t) => {
    const prefix = running.service.context.config.keyPrefix;
    await proveFailover(t, running, async () => {
      // The primary that holds the most of this run's locks (then keys): the fault hits the load.
      const primaries = await cluster.primaryPorts();
      const weights = await Promise.all(
        primaries.map(async (port) => {
          const locks = await redisCli(port, ['--scan', '--pattern', `${prefix}:lock.v1:*`]);
          const all = await redisCli(port, ['--scan', '--pattern', `${prefix}:*`]);
          return locks.length * 1000 + all.length;
        }),
      );
      const victimPort = primaries[weights.indexOf(Math.max(...weights))];
      const victim: RedisServer | undefined = cluster.nodes.find((node) => node.port === victimPort);
      assert.ok(victim);
      return {
        kill: () => victim.kill(),
        promoted: async () => {
          const now = await cluster.primaryPorts();
          if (now.length !== 3) return false;
          const info = await redisCli(now[0] ?? 0, ['cluster', 'info']);
          return info.some((line) => line.trim() === 'cluster_state:ok');
        },
      };
    });
  });
});

/** A store that takes the first lock it is asked for but loses the reply, as a failover can. */
class LostReplyStore extends MemoryStore {
  dropped = 0;

  override async acquireLock(
    resourceId: string,
    ownerId: string,
    ttlMs: number,
    holder: string,
  ): Promise<LockAcquireResult> {
    const result = await super.acquireLock(resourceId, ownerId, ttlMs, holder);
    if (this.dropped > 0) return result;
    this.dropped++;
    throw new StoreUnavailableError('Redis is not answering (the reply was lost)');
  }
}

describe('a lock acquire that answered 503 but took the lock on the server', () => {
  it('is given back once the store answers, instead of blocking the resource for its TTL', async () => {
    const locks = new Locks(new LostReplyStore({ keyPrefix: uniquePrefix() }), KeyRing.random());
    await assert.rejects(locks.tryAcquire('form:edit', { ttl: '2m' }), StoreUnavailableError);
    // Held by an owner token nobody has...
    const refused = await locks.tryAcquire('form:edit', { ttl: '2m' });
    assert.equal(refused.acquired, false);
    // ...for a moment, not for two minutes.
    await waitFor(
      'the lock to be given back',
      async () => (await locks.tryAcquire('form:edit')).acquired,
      5000,
    );
  });
});
