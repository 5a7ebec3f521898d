/**
 * Redis round trips per authenticated request, counted by a TCP proxy in front of a real Redis,
 * the same for the Fastify plugin and the Express adapter (both make one guard call, see
 * HttpGuard.admit): the session and the route's rate limit travel together, also when the
 * session's entry in the local cache has expired; the early charge never charges a user for
 * a token this instance has not seen valid; and a client IP the anonymous limit refused costs no
 * round trip at all, while a session the instance knows costs one as without that limit.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import express from 'express';
import Fastify from 'fastify';

import { gatehouseExpress } from '../../src/adapters/express.js';
import { gatehouseFastify } from '../../src/adapters/fastify.js';
import { createGatehouse, type Gatehouse } from '../../src/gatehouse.js';
import { countingProxy } from '../harness/counting-proxy.js';
import { startStandalone, uniquePrefix, type Standalone } from '../harness/topologies.js';

/**
 * The guard options beside the primitives: the anonymous limit on, and the test's own address
 * a trusted proxy, so that a request can claim a client IP of its own (X-Forwarded-For).
 */
const GUARD_OPTIONS = { secureCookies: false, anonymousPolicy: 'anonymous', trustProxy: ['127.0.0.1'] };

/** An app with one route, GET /me: a required session and the `api` rate limit. */
type AppFactory = (gh: Gatehouse) => Promise<{ url: string; close: () => Promise<void> }>;

const FRAMEWORKS: Record<string, AppFactory> = {
  'Fastify plugin': async (gh) => {
    const app = Fastify();
    await app.register(gatehouseFastify, { ...gh, ...GUARD_OPTIONS });
    app.get('/me', { config: { gatehouse: { session: 'required', rateLimit: 'api' } } }, (request) => ({
      userId: request.session?.userId,
    }));
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    return { url, close: () => app.close() };
  },
  'Express adapter': async (gh) => {
    const app = express();
    const guard = gatehouseExpress({ ...gh, ...GUARD_OPTIONS });
    app.get('/me', guard.protect({ session: 'required', rateLimit: 'api' }), (req, res) => {
      res.json({ userId: req.session?.userId });
    });
    const server = await new Promise<Server>((resolve) => {
      const listening = app.listen(0, '127.0.0.1', () => {
        resolve(listening);
      });
    });
    const { port } = server.address() as AddressInfo;
    return {
      url: `http://127.0.0.1:${String(port)}`,
      close: () =>
        new Promise((resolve) => {
          server.closeAllConnections();
          server.close(() => {
            resolve();
          });
        }),
    };
  },
};

for (const [framework, startApp] of Object.entries(FRAMEWORKS)) {
  describe(
    `round trips per authenticated request (${framework}, standalone Redis)`,
    { timeout: 60_000 },
    () => {
      let redis: Standalone;
      let proxy: Awaited<ReturnType<typeof countingProxy>>;
      let gh: Gatehouse;
      let app: Awaited<ReturnType<AppFactory>>;

      before(async () => {
        redis = await startStandalone();
        proxy = await countingProxy(redis.server.port);
        gh = await createGatehouse({
          redis: `redis://127.0.0.1:${String(proxy.port)}`,
          keyPrefix: uniquePrefix(),
          secretKeys: [randomBytes(32)],
          origin: 'http://127.0.0.1',
          // Slow to refill: the allowance left counts the charges.
          rateLimits: { api: '1/1h+1000', anonymous: '1/1h+4' },
        });
        app = await startApp(gh);
      });

      after(async () => {
        await app.close();
        await gh.close();
        proxy.close();
        await redis.destroy();
      });

      /** One request, with the round trips it cost and the allowance left after it. */
      async function me(
        token: string,
        clientIp?: string,
      ): Promise<{ status: number; roundTrips: number; remaining: number }> {
        const before = proxy.roundTrips();
        const answer = await fetch(`${app.url}/me`, {
          headers: {
            authorization: `Bearer ${token}`,
            ...(clientIp === undefined ? {} : { 'x-forwarded-for': clientIp }),
          },
        });
        await answer.arrayBuffer();
        return {
          status: answer.status,
          roundTrips: proxy.roundTrips() - before,
          remaining: Number(answer.headers.get('x-ratelimit-remaining')),
        };
      }

      it('costs one round trip with the session cached, and one when its cache entry has expired', async () => {
        const { token } = await gh.sessions.create({ userId: `user-${randomBytes(4).toString('hex')}` });
        const first = await me(token); // this instance learns whose session it is
        assert.equal(first.status, 200);
        const cached = await me(token);
        assert.equal(cached.status, 200);
        assert.equal(cached.roundTrips, 1, 'the rate-limit charge alone');
        assert.equal(cached.remaining, first.remaining - 1);
        await sleep(1200); // the local cache keeps a validation for a second at most
        const cold = await me(token);
        assert.equal(cold.status, 200);
        assert.equal(cold.roundTrips, 1, 'validation and charge together');
        assert.equal(cold.remaining, cached.remaining - 1, 'charged once');
      });

      it('charges nobody for a token it never saw valid, and a session that ended at most once', async () => {
        const userId = `user-${randomBytes(4).toString('hex')}`;
        const kept = await gh.sessions.create({ userId });
        const ending = await gh.sessions.create({ userId });
        const start = await me(kept.token);
        assert.equal((await me(ending.token)).status, 200);
        // A forged token naming this user's pseudonym (the first part of every token of theirs).
        const forged =
          kept.token.slice(0, 22) +
          randomBytes(32)
            .toString('base64url')
            .slice(0, kept.token.length - 22);
        assert.equal(forged.length, kept.token.length);
        assert.equal((await me(forged)).status, 401);
        await gh.sessions.revoke(ending.session.handle, { userId });
        await sleep(1200);
        assert.equal((await me(ending.token)).status, 401);
        assert.equal((await me(ending.token)).status, 401);
        const after = await me(kept.token);
        // kept: 1; ending: 1 while valid; forged: 0; the ended session: 1 at most (its first refusal).
        assert.ok(
          start.remaining - after.remaining <= 3,
          `charged ${String(start.remaining - after.remaining)} times for 2 valid requests and 3 refused ones`,
        );
        assert.ok(start.remaining - after.remaining >= 2);
      });

      it('costs a client IP the anonymous limit refused no round trip, a session it knows still one', async () => {
        const clientIp = '198.51.100.77';
        const known = await gh.sessions.create({ userId: `user-${randomBytes(4).toString('hex')}` });
        assert.equal((await me(known.token)).status, 200); // this instance learns whose session it is
        const forged = () => randomBytes(45).toString('base64url').slice(0, known.token.length);
        const statuses = [];
        for (let i = 0; i < 5; i++) statuses.push((await me(forged(), clientIp)).status);
        assert.deepEqual(statuses, [401, 401, 401, 401, 401], 'the anonymous allowance: 5 at once');
        const refused = await me(forged(), clientIp);
        assert.equal(refused.status, 429);
        for (let i = 0; i < 10; i++) {
          const again = await me(forged(), clientIp);
          assert.deepEqual([again.status, again.roundTrips], [429, 0], 'answered from memory');
        }
        const hot = await me(known.token, clientIp);
        assert.deepEqual([hot.status, hot.roundTrips], [200, 1], 'a known session: as before');
      });
    },
  );
}
