/** The conformance app on Fastify 5, wired only through the gatehouse plugin. */
import Fastify from 'fastify';

import { gatehouseErrorHandler, gatehouseFastify } from '../../src/adapters/fastify.js';
import type { AppParts, Gate } from './parts.js';
import type { TestApp } from './conformance-suite.js';

export async function fastifyApp(parts: AppParts, gate: Gate): Promise<TestApp> {
  const app = Fastify();
  await app.register(gatehouseFastify, parts);
  app.setErrorHandler(gatehouseErrorHandler);
  app.post('/bare', () => ({ success: true, data: {} }));

  app.post('/signin', { config: { gatehouse: { rateLimit: { auth: 'ip' } } } }, async (request, reply) => {
    const { userId, roles } = request.body as { userId: string; roles?: string[] };
    const { token, session } = await parts.sessions.create({ userId, roles: roles ?? [] });
    const csrfToken = await parts.csrf.issue(session);
    void reply.header('Set-Cookie', app.gatehouse.sessionCookie(token, session));
    return { success: true, data: { token, csrfToken, handle: session.handle } };
  });
  app.get('/me', { config: { gatehouse: { session: 'required', rateLimit: 'api' } } }, (request) => ({
    success: true,
    data: { userId: request.session?.userId ?? null },
  }));
  app.get('/admin', { config: { gatehouse: { roles: ['admin'] } } }, () => ({ success: true, data: {} }));
  app.post('/notes', { config: { gatehouse: { session: 'required' } } }, async (_request, reply) => {
    return reply.code(201).send({ success: true, data: {} });
  });
  app.get('/public/forms/:id', async (request) => {
    const { id } = request.params as { id: string };
    return { success: true, data: await parts.nonces.issue(`form:${id}`) };
  });
  app.post(
    '/public/forms/:id/responses',
    {
      config: {
        gatehouse: { nonce: { purpose: (request) => `form:${(request.params as { id: string }).id}` } },
      },
    },
    async (_request, reply) => reply.code(201).send({ success: true, data: {} }),
  );
  app.post(
    '/pdf/:id',
    {
      config: {
        gatehouse: {
          session: 'required',
          lock: { resource: (request) => `pdf:${(request.params as { id: string }).id}`, ttl: '300ms' },
        },
      },
    },
    async (request) => {
      await gate.pass();
      return { success: true, data: { fencingToken: request.gatehouseLock?.fencingToken ?? null } };
    },
  );
  app.post('/signout', { config: { gatehouse: { session: 'required' } } }, async (request, reply) => {
    const auth = request.gatehouseAuth;
    if (auth) void reply.headers(await app.gatehouse.signOut(auth));
    return reply.code(204).send();
  });

  const address = await app.listen({ host: '127.0.0.1', port: 0 });
  return { url: address, close: () => app.close() };
}
