/**
 * Durable mode on a real redis-server with SQL beside it (PGlite embedded, and PostgreSQL on
 * 127.0.0.1:5432 in a schema of its own): sessions outlive Redis, revoked ones stay revoked, and
 * the cache refills when Redis is back.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';

import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';

import { KeyRing } from '../../src/crypto/keyring.js';
import { Csrf } from '../../src/csrf/csrf.js';
import { StoreUnavailableError } from '../../src/errors.js';
import { Nonces } from '../../src/nonces/nonces.js';
import { SqlSessionRepository, type SqlQueryable } from '../../src/sessions/sql-repository.js';
import { Sessions } from '../../src/sessions/sessions.js';
import { RedisStore } from '../../src/store/redis/store.js';
import { dumpKeys, startStandalone, uniquePrefix, waitFor, type Standalone } from '../harness/topologies.js';

interface Database {
  readonly db: SqlQueryable;
  close(): Promise<void>;
}

async function pglite(): Promise<Database> {
  const db = new PGlite();
  await db.waitReady;
  return { db, close: () => db.close() };
}

/** Where the PostgreSQL tests connect: this machine's server unless TEST_DATABASE_URL says otherwise. */
const POSTGRES_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** PostgreSQL, in a schema that only this test uses and drops afterwards. */
async function postgres(): Promise<Database> {
  const schema = `gh_test_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  const pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 4, options: `-c search_path=${schema}` });
  return {
    db: pool,
    close: async () => {
      await pool.end();
      await admin.query(`DROP SCHEMA ${schema} CASCADE`);
      await admin.end();
    },
  };
}

describe('a killed Redis without durable mode', () => {
  it('fails sessions and nonces closed (even a session this instance cached); CSRF tokens verify by MAC', async () => {
    const redis = await startStandalone();
    const store = new RedisStore({ connection: redis.connection, keyPrefix: uniquePrefix() });
    const keyRing = KeyRing.random();
    const sessions = new Sessions(store, keyRing);
    try {
      await store.waitUntilReady(5000);
      const { token } = await sessions.create({ userId: randomUUID() });
      await waitFor(
        'the session to be cached',
        async () => (await sessions.validate(token)) !== null && sessions.localCacheActive,
      );
      const session = await sessions.validate(token);
      assert.ok(session);
      const csrf = new Csrf(store, keyRing, { ownOrigin: 'https://forms.example.com' });
      const csrfToken = await csrf.issue(session);
      const nonces = new Nonces(store, keyRing);
      const { nonce } = await nonces.issue('form:1');
      await redis.server.kill();
      await waitFor('the client to see the connection gone', () => !store.isReady());
      await assert.rejects(sessions.validate(token), StoreUnavailableError);
      assert.deepEqual(
        await csrf.verifyToken(session, csrfToken),
        { ok: true },
        'the CSRF MAC still decides',
      );
      await assert.rejects(nonces.consume('form:1', nonce), StoreUnavailableError, 'nonces fail closed');
    } finally {
      await sessions.close();
      await store.close();
      await redis.destroy();
    }
  });
});

for (const [name, open] of [
  ['PGlite', pglite],
  ['PostgreSQL', postgres],
] as const) {
  describe(`durable sessions on ${name}`, () => {
    let redis: Standalone;
    let database: Database;
    let store: RedisStore;
    let sessions: Sessions;
    const prefix = uniquePrefix();

    before(async () => {
      redis = await startStandalone();
      database = await open();
      const repository = new SqlSessionRepository(database.db);
      await repository.migrate();
      await repository.migrate(); // idempotent
      store = new RedisStore({ connection: redis.connection, keyPrefix: prefix });
      await store.waitUntilReady(5000);
      sessions = new Sessions(store, KeyRing.random(), { repository, touchInterval: 0 });
    });

    after(async () => {
      await sessions.close();
      await store.close();
      await database.close();
      await redis.destroy();
    });

    it('validates from SQL while Redis is down, keeps revoked sessions revoked, and refills after', async () => {
      const userId = randomUUID();
      const kept = await sessions.create({ userId, ip: '198.51.100.4' });
      const revokedBefore = await sessions.create({ userId });
      const revokedDuring = await sessions.create({ userId });
      assert.ok(await sessions.revoke(revokedBefore.session.handle));

      await redis.server.kill();
      const fromSql = await sessions.validateWithReason(kept.token);
      assert.equal(fromSql.session?.handle, kept.session.handle, 'a valid session validates from SQL');
      assert.equal(fromSql.session.ip, '198.51.100.4');
      assert.deepEqual(await sessions.validateWithReason(revokedBefore.token), {
        session: null,
        reason: 'revoked',
      });
      assert.equal((await sessions.list(userId)).length, 2, 'listing falls back to SQL');
      assert.ok(await sessions.revoke(revokedDuring.session.handle), 'revocation works while Redis is down');
      assert.deepEqual(await sessions.validateWithReason(revokedDuring.token), {
        session: null,
        reason: 'revoked',
      });
      await assert.rejects(sessions.create({ userId }), StoreUnavailableError, 'creation needs Redis');

      // Redis comes back empty (it keeps nothing on disk): the cache refills from SQL.
      await redis.server.restart();
      await waitFor('Redis to answer again', () => store.isReady());
      assert.equal((await sessions.validate(kept.token))?.handle, kept.session.handle);
      const keys = [...(await dumpKeys([await redis.admin()], prefix)).keys()];
      assert.ok(
        keys.some((key) => key.endsWith(kept.session.handle.slice(16))),
        'the session is back in Redis',
      );
      assert.equal(await sessions.validate(revokedBefore.token), null);
      assert.equal(await sessions.validate(revokedDuring.token), null);
      assert.deepEqual(
        (await sessions.list(userId)).map((session) => session.handle),
        [kept.session.handle],
      );
    });

    it('replays revocations made while Redis stalled, before serving anything after', async () => {
      const userId = randomUUID();
      const session = await sessions.create({ userId });
      const repository = new SqlSessionRepository(database.db);
      redis.server.pause();
      try {
        // Redis keeps its data but does not answer: this instance notices and serves from SQL...
        assert.equal((await sessions.validate(session.token))?.handle, session.session.handle);
        // ...while another instance revokes the session, and only SQL records it.
        const uid = sessions.userPseudonym(userId);
        assert.deepEqual(
          await repository.end(uid, [session.session.handle.slice(16)], 'revoked', Date.now()),
          [session.session.handle.slice(16)],
        );
        assert.equal(await sessions.validate(session.token), null, 'SQL already says revoked');
      } finally {
        redis.server.resume();
      }
      // Redis still holds the session as live: the first call after the outage replays SQL's
      // revocations before it is served.
      assert.deepEqual(await sessions.validateWithReason(session.token), {
        session: null,
        reason: 'revoked',
      });
    });

    it('never refills a session SQL has as ended', async () => {
      const userId = randomUUID();
      const ended = await sessions.create({ userId });
      const repository = new SqlSessionRepository(database.db);
      const uid = sessions.userPseudonym(userId);
      await repository.end(uid, [ended.session.handle.slice(16)], 'revoked', Date.now());
      // Lose the Redis copy: only SQL can answer, and its tombstone wins.
      const admin = await redis.admin();
      await admin.flushAll();
      admin.destroy();
      assert.deepEqual(await sessions.validateWithReason(ended.token), { session: null, reason: 'revoked' });
    });
  });
}
