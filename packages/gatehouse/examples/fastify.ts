// A complete Fastify 5 service with gatehouse: sessions (cookie or bearer), CSRF, rate limits
// and a lock. Run: REDIS_URL=redis://127.0.0.1:6379 SECRET_KEYS=<64 hex chars> node --import tsx fastify.ts
import { randomBytes } from 'node:crypto';

import Fastify from 'fastify';
import { createGatehouse } from 'gatehouse';
import { gatehouseFastify } from 'gatehouse/fastify';

const gh = await createGatehouse({
  redis: process.env.REDIS_URL ?? 'memory',
  // Development without SECRET_KEYS: a random key, so sessions end with the process.
  secretKeys: process.env.SECRET_KEYS?.split(',') ?? [randomBytes(32)],
  origin: process.env.ORIGIN ?? 'http://localhost:3000',
  rateLimits: { auth: '5/1m+2', api: '100/1m+10' },
});

const app = Fastify();
await app.register(gatehouseFastify, { ...gh, secureCookies: process.env.COOKIE_SECURE !== 'false' });

// Replace the body check with your own authentication (password, SSO, passkey).
app.post('/signin', { config: { gatehouse: { rateLimit: { auth: 'ip' } } } }, async (request, reply) => {
  const { userId } = request.body as { userId: string };
  const { token, session } = await gh.sessions.create({
    userId,
    ip: request.ip,
    userAgent: request.headers['user-agent'],
  });
  void reply.header('Set-Cookie', app.gatehouse.sessionCookie(token, session));
  return { success: true, data: { sessionToken: token, csrfToken: await gh.csrf.issue(session) } };
});

app.get('/me', { config: { gatehouse: { session: 'required', rateLimit: 'api' } } }, (request) => ({
  success: true,
  data: { userId: request.session?.userId },
}));

// Cookie-authenticated unsafe requests need X-CSRF-Token and the service's own origin.
app.post(
  '/notes',
  { config: { gatehouse: { session: 'required', rateLimit: 'api' } } },
  async (_request, reply) => reply.code(201).send({ success: true, data: {} }),
);

// One render per report at a time, across every instance: others get 409 with Retry-After.
app.post(
  '/reports/:id/pdf',
  {
    config: {
      gatehouse: {
        session: 'required',
        lock: { resource: (request) => `pdf:${(request.params as { id: string }).id}`, ttl: '1m' },
      },
    },
  },
  (request) => ({ success: true, data: { fencingToken: request.gatehouseLock?.fencingToken } }),
);

app.post('/signout', { config: { gatehouse: { session: 'required' } } }, async (request, reply) => {
  if (request.gatehouseAuth) void reply.headers(await app.gatehouse.signOut(request.gatehouseAuth));
  return reply.code(204).send();
});

const address = await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 3000) });
console.log(`listening on ${address}`);

process.once('SIGTERM', () => {
  void app.close().then(() => gh.close());
});
