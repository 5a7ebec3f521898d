/**
 * gatehouse the library, for the HTTP benchmark: the Fastify plugin on a bare route answering
 * the same JSON as the reference service's `GET /api/v1/me`, behind the session (cookie) and the
 * `api` rate limit, with nothing else (no SQL, no metrics, no logging). `POST /bench/signin`
 * starts a session for `?user=` and sets its cookie. Run as a child process by bench/http.ts;
 * prints `listening <port>` once it accepts connections.
 *
 * Env: REDIS_PORT, SECRET_KEYS, BODY (the JSON to answer), RATE_LIMIT (a policy, e.g. 1000/1m).
 */
import Fastify from 'fastify';

import { gatehouseFastify } from '../../packages/gatehouse/src/adapters/fastify.js';
import { createGatehouse } from '../../packages/gatehouse/src/gatehouse.js';

const gh = await createGatehouse({
  redis: `redis://127.0.0.1:${process.env.REDIS_PORT ?? '6379'}`,
  keyPrefix: 'ghl',
  secretKeys: (process.env.SECRET_KEYS ?? '').split(','),
  origin: 'http://127.0.0.1',
  rateLimits: { api: process.env.RATE_LIMIT ?? '100/1m+10' },
});
const body = process.env.BODY ?? '{}';
const app = Fastify({ logger: false });
await app.register(gatehouseFastify, { ...gh, secureCookies: false });
app.post('/bench/signin', { config: { gatehouse: { csrf: false } } }, async (request, reply) => {
  const { token, session } = await gh.sessions.create({
    userId: (request.query as { user?: string }).user ?? 'anonymous',
  });
  return reply.header('set-cookie', app.gatehouse.sessionCookie(token, session)).code(204).send();
});
app.get(
  '/api/v1/me',
  { config: { gatehouse: { session: 'required', rateLimit: 'api' } } },
  async (_request, reply) => {
    reply.header('content-type', 'application/json; charset=utf-8');
    return body;
  },
);
const address = await app.listen({ host: '127.0.0.1', port: 0 });
process.stdout.write(`listening ${new URL(address).port}\n`);
process.once('SIGTERM', () => {
  void app.close().then(() => gh.close());
});
