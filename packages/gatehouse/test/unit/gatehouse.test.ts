/**
 * createGatehouse: one object with every primitive over one store, from a URL or 'memory', with
 * secret keys as text or bytes; usable directly as the adapters' options.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';

import Fastify from 'fastify';
import { pino } from 'pino';

import { gatehouseFastify } from '../../src/adapters/fastify.js';
import { createGatehouse } from '../../src/gatehouse.js';
import { startStandalone, type Standalone } from '../harness/topologies.js';

describe('createGatehouse', () => {
  let redis: Standalone;
  before(async () => {
    redis = await startStandalone();
  });
  after(async () => {
    await redis.destroy();
  });

  for (const where of ['memory', 'redis'] as const) {
    it(`builds every primitive over one store (${where})`, async () => {
      const gh = await createGatehouse({
        redis: where === 'memory' ? 'memory' : `redis://127.0.0.1:${String(redis.server.port)}`,
        secretKeys: [randomBytes(32).toString('hex'), randomBytes(32)],
        origin: 'https://forms.example.test',
        keyPrefix: 'ghtest',
        sessions: { maxPerUser: 2 },
        rateLimits: { auth: '1/1m' },
      });
      try {
        assert.equal(gh.store.mode, where === 'memory' ? 'memory' : 'standalone');
        const { token, session } = await gh.sessions.create({ userId: 'u1' });
        assert.equal((await gh.sessions.validate(token))?.handle, session.handle);
        assert.equal((await gh.rateLimits.check({ auth: 'ip:1' })).allowed, true);
        assert.equal((await gh.rateLimits.check({ auth: 'ip:1' })).allowed, false);
        const lock = await gh.locks.tryAcquire('pdf:1');
        assert.ok(lock.acquired);
        await lock.release();
        const { nonce } = await gh.nonces.issue('form:1');
        assert.deepEqual(await gh.nonces.consume('form:1', nonce), { ok: true });
        const csrfToken = await gh.csrf.issue(session);
        assert.deepEqual(await gh.csrf.verifyToken(session, csrfToken), { ok: true });
        assert.equal((await gh.health()).status, 'up');
        const app = Fastify();
        await app.register(gatehouseFastify, gh); // the object is the adapters' options
        await app.close();
      } finally {
        await gh.close();
      }
    });
  }

  it('refuses short or malformed secret keys and a bad Redis URL, naming the key', async () => {
    await assert.rejects(
      createGatehouse({ redis: 'memory', secretKeys: ['abcd'], origin: 'https://a.example' }),
      /secret key 1 of 1/,
    );
    await assert.rejects(
      createGatehouse({
        redis: 'memory',
        secretKeys: [randomBytes(32), 'not base64!'],
        origin: 'https://a.example',
      }),
      /secret key 2 of 2/,
    );
    await assert.rejects(
      createGatehouse({ redis: 'http://x', secretKeys: [randomBytes(32)], origin: 'https://a.example' }),
      TypeError,
    );
  });

  it('goes on after the ready timeout when Redis is not there yet, and says so through a pino logger', async () => {
    const lines: string[] = [];
    const logger = pino(
      { level: 'warn' },
      {
        write: (line: string) => {
          lines.push(line);
        },
      },
    );
    const started = Date.now();
    const gh = await createGatehouse({
      redis: 'redis://127.0.0.1:1',
      secretKeys: [randomBytes(32)],
      origin: 'https://a.example',
      readyTimeout: '200ms',
      logger,
    });
    try {
      assert.ok(Date.now() - started < 2000);
      assert.equal((await gh.health()).status, 'down');
      const records = lines.map((line) => JSON.parse(line) as { level: number; msg: string });
      assert.ok(
        records.some((record) => record.level === 40 && /Redis is not answering yet/.test(record.msg)),
        lines.join(''),
      );
    } finally {
      await gh.close();
    }
  });
});
