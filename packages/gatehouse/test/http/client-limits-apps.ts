/**
 * The small app the per-client limit cases run against (./client-limits.test.ts), once per
 * adapter: routes that need a session, an optional one, the client IP as the guard sees it, and a
 * sign-in that uses the account methods as a service would (peek before the password check,
 * charge every failure).
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import express, { type Request, type Response } from 'express';
import Fastify from 'fastify';

import { gatehouseExpress } from '../../src/adapters/express.js';
import { gatehouseFastify } from '../../src/adapters/fastify.js';
import { nodeRequestView, type HttpGuard, type HttpGuardOptions } from '../../src/http/guard.js';
import type { HttpRefusal } from '../../src/http/envelope.js';
import { silentLogger } from '../../src/util/logger.js';
import { express4 } from './express-app.js';

export interface LimitsApp {
  readonly url: string;
  close(): Promise<void>;
}

export type LimitsAppBuilder = (options: HttpGuardOptions) => Promise<LimitsApp>;

/** The password every test account has. */
export const RIGHT_PASSWORD = 'correct horse battery staple';

/** The account policy the sign-in route peeks at and charges. */
export const ACCOUNT_POLICY = 'account';

/** The sign-in's answer, framework-neutral: status, headers and body. */
async function signIn(
  guard: HttpGuard,
  body: unknown,
): Promise<{ status: number; headers: Record<string, string>; body: unknown }> {
  const { account, password } = (body ?? {}) as { account?: string; password?: string };
  const answer = (refused: HttpRefusal, headers: Record<string, string>) => ({
    status: refused.status,
    headers: { ...headers, ...refused.headers },
    body: refused.body,
  });
  const peeked = await guard.peekAccountLimit(ACCOUNT_POLICY, String(account));
  if (peeked.refusal) return answer(peeked.refusal, peeked.headers);
  if (password !== RIGHT_PASSWORD) {
    const charged = await guard.chargeAccountFailure(ACCOUNT_POLICY, String(account));
    return {
      status: 401,
      headers: charged.headers,
      body: { success: false, error: { code: 'UNAUTHENTICATED', message: 'Wrong email or password.' } },
    };
  }
  // Signed in: the route's own (per-IP) rate-limit headers stand.
  return { status: 200, headers: {}, body: { success: true, data: {} } };
}

export const fastifyLimitsApp: LimitsAppBuilder = async (options) => {
  const app = Fastify();
  await app.register(gatehouseFastify, options);
  app.get('/me', { config: { gatehouse: { session: 'required', rateLimit: 'api' } } }, (request) => ({
    userId: request.session?.userId ?? null,
  }));
  app.get('/admin', { config: { gatehouse: { roles: ['admin'] } } }, () => ({ ok: true }));
  app.get('/maybe', { config: { gatehouse: { session: 'optional' } } }, (request) => ({
    userId: request.session?.userId ?? null,
  }));
  app.get('/ip', { config: { gatehouse: { authenticate: false } } }, (request) => ({
    ip: app.gatehouse.clientIp(nodeRequestView(request.raw)),
  }));
  app.post(
    '/signin',
    { config: { gatehouse: { rateLimit: { auth: 'ip' }, csrf: false } } },
    async (request, reply) => {
      const answer = await signIn(app.gatehouse, request.body);
      return reply.code(answer.status).headers(answer.headers).send(answer.body);
    },
  );
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  return { url, close: () => app.close() };
};

function expressLimitsApp(framework: typeof express): LimitsAppBuilder {
  return async (options) => {
    const gh = gatehouseExpress({ ...options, logger: silentLogger });
    const app = framework();
    app.use(framework.json(), gh.authenticate());
    app.get('/me', gh.protect({ session: 'required', rateLimit: 'api' }), (req: Request, res: Response) => {
      res.json({ userId: req.session?.userId ?? null });
    });
    app.get('/admin', gh.protect({ roles: ['admin'] }), (_req: Request, res: Response) => {
      res.json({ ok: true });
    });
    app.get('/maybe', gh.protect({ session: 'optional' }), (req: Request, res: Response) => {
      res.json({ userId: req.session?.userId ?? null });
    });
    app.get('/ip', (req: Request, res: Response) => {
      res.json({ ip: gh.guard.clientIp(nodeRequestView(req)) });
    });
    app.post('/signin', gh.protect({ rateLimit: { auth: 'ip' } }), (req: Request, res: Response, next) => {
      signIn(gh.guard, req.body)
        .then((answer) => res.status(answer.status).set(answer.headers).json(answer.body))
        .catch(next);
    });
    app.use(gh.errorHandler());
    const server = await new Promise<Server>((resolve) => {
      const listening = app.listen(0, '127.0.0.1', () => {
        resolve(listening);
      });
    });
    const { port } = server.address() as AddressInfo;
    return {
      url: `http://127.0.0.1:${String(port)}`,
      close: () =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => {
            resolve();
          });
        }),
    };
  };
}

export const LIMITS_APPS: readonly [string, LimitsAppBuilder][] = [
  ['fastify 5', fastifyLimitsApp],
  ['express 5', expressLimitsApp(express)],
  ['express 4', expressLimitsApp(express4)],
];
