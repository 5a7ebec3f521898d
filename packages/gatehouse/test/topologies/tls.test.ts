/**
 * RedisStore over TLS with a CA and client certificate generated for the test: the store
 * contract, and refusal of anything that cannot be verified.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { StoreUnavailableError } from '../../src/errors.js';
import { RedisStore } from '../../src/store/redis/store.js';
import { startTlsServer, uniquePrefix, type AdminClient, type TlsStandalone } from '../harness/topologies.js';
import { runContracts } from '../contracts/matrix.js';
import { redisStoreFixture } from '../harness/fixtures.js';

describe('redis over TLS', () => {
  let redis: TlsStandalone;
  let admin: AdminClient;

  before(async () => {
    redis = await startTlsServer();
    admin = await redis.admin();
  });

  after(async () => {
    admin.destroy();
    await redis.destroy();
  });

  runContracts('redis TLS', { store: () => redisStoreFixture(redis.connection, [admin]) });

  /** A store that must never connect: every call fails fast, naming the TLS problem. */
  async function assertRefused(connection: TlsStandalone['connection'], reason: RegExp): Promise<void> {
    const store = new RedisStore({ connection, keyPrefix: uniquePrefix() });
    try {
      await assert.rejects(store.waitUntilReady(1000), StoreUnavailableError);
      const started = performance.now();
      await assert.rejects(store.probeReadWrite('p', 'v', 1000), (error: unknown) => {
        assert.ok(error instanceof StoreUnavailableError, String(error));
        assert.match(error.message, reason);
        return true;
      });
      assert.ok(performance.now() - started < 1000);
      assert.ok(!store.isReady());
    } finally {
      await store.close();
    }
  }

  it('refuses a server certificate signed by another CA', async () => {
    await assertRefused(
      {
        ...redis.connection,
        tls: { ca: redis.pki.wrongCa, cert: redis.pki.clientCert, key: redis.pki.clientKey },
      },
      /self[- ]signed|unable to verify|certificate/i,
    );
  });

  it('refuses the test CA when only the system CAs are trusted (tls: true)', async () => {
    await assertRefused({ ...redis.connection, tls: true }, /self[- ]signed|unable to verify|certificate/i);
  });

  it('is refused by a server that requires a client certificate when none is given', async () => {
    await assertRefused({ ...redis.connection, tls: { ca: redis.pki.ca } }, /./);
  });

  it('does not speak plaintext to the TLS port', async () => {
    const { tls: _tls, ...plaintext } = redis.connection;
    await assertRefused(plaintext, /./);
  });
});
