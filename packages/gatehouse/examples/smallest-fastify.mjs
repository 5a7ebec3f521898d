// The smallest Fastify app with gatehouse: a session cookie, a protected route, a rate limit.
import { randomBytes } from 'node:crypto';

import Fastify from 'fastify';
import { createGatehouse } from 'gatehouse';
import { gatehouseErrorHandler, gatehouseFastify } from 'gatehouse/fastify';

const gh = await createGatehouse({
  redis: process.env.REDIS_URL ?? 'memory', // 'memory': one process only
  secretKeys: process.env.SECRET_KEYS?.split(',') ?? [randomBytes(32)],
  origin: 'http://localhost:3000',
  rateLimits: { api: '100/1m+10' },
});

const app = Fastify();
await app.register(gatehouseFastify, gh);
app.setErrorHandler(gatehouseErrorHandler);

app.post('/signin', async (request, reply) => {
  // Check the user's password (or SSO, or passkey) here first.
  const { token, session } = await gh.sessions.create({ userId: request.body.userId });
  reply.header('set-cookie', app.gatehouse.sessionCookie(token, session));
  return { sessionToken: token };
});

app.get('/me', { config: { gatehouse: { session: 'required', rateLimit: 'api' } } }, (request) => ({
  userId: request.session.userId,
}));

const address = await app.listen({ port: Number(process.env.PORT ?? 3000) });
console.log(`listening on ${address}`);
