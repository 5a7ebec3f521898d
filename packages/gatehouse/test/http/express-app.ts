/** The conformance app on Express (4 or 5, given as the module), wired only through gatehouse's middleware. */
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';

import express from 'express';

import { gatehouseExpress } from '../../src/adapters/express.js';
import { silentLogger } from '../../src/util/logger.js';
import type { TestApp } from './conformance-suite.js';
import type { AppParts, Gate } from './parts.js';

/** Express 4, installed as `express4` beside Express 5 (the same typings serve both here). */
export const express4 = createRequire(import.meta.url)('express4') as typeof express;

export function expressApp(framework: typeof express) {
  return async (parts: AppParts, gate: Gate): Promise<TestApp> => {
    const gh = gatehouseExpress({ ...parts, logger: silentLogger });
    const app = framework();
    app.use(framework.json(), gh.authenticate());

    app.post('/signin', gh.protect({ rateLimit: { auth: 'ip' } }), (req, res, next) => {
      const { userId, roles } = req.body as { userId: string; roles?: string[] };
      parts.sessions
        .create({ userId, roles: roles ?? [] })
        .then(async ({ token, session }) => {
          const csrfToken = await parts.csrf.issue(session);
          gh.setSessionCookie(res, token, session);
          res.json({ success: true, data: { token, csrfToken, handle: session.handle } });
        })
        .catch(next);
    });
    app.get('/me', gh.protect({ session: 'required', rateLimit: 'api' }), (req, res) => {
      res.json({ success: true, data: { userId: req.session?.userId ?? null } });
    });
    app.get('/admin', gh.protect({ roles: ['admin'] }), (_req, res) => {
      res.json({ success: true, data: {} });
    });
    app.post('/notes', gh.protect({ session: 'required' }), (_req, res) => {
      res.status(201).json({ success: true, data: {} });
    });
    app.get('/public/forms/:id', (req, res, next) => {
      parts.nonces
        .issue(`form:${req.params.id}`)
        .then((issued) => res.json({ success: true, data: issued }))
        .catch(next);
    });
    app.post(
      '/public/forms/:id/responses',
      gh.nonce((req) => `form:${String(req.params.id)}`),
      (_req, res) => {
        res.status(201).json({ success: true, data: {} });
      },
    );
    app.post(
      '/pdf/:id',
      gh.protect({ session: 'required' }),
      gh.lock((req) => `pdf:${String(req.params.id)}`, { ttl: '300ms' }),
      (req, res, next) => {
        gate
          .pass()
          .then(() =>
            res.json({ success: true, data: { fencingToken: req.gatehouseLock?.fencingToken ?? null } }),
          )
          .catch(next);
      },
    );
    app.post('/signout', gh.protect({ session: 'required' }), (req, res, next) => {
      gh.signOut(req, res)
        .then(() => res.status(204).end())
        .catch(next);
    });

    app.post('/bare', (_req, res) => {
      res.json({ success: true, data: {} });
    });
    app.use(gh.errorHandler());

    const server = app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server.once('listening', resolve));
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
