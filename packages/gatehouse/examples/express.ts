// A complete Express 5 (or 4) service with gatehouse: sessions (cookie or bearer), CSRF, rate
// limits and a lock. Run: REDIS_URL=redis://127.0.0.1:6379 SECRET_KEYS=<64 hex chars> node --import tsx express.ts
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';

import express from 'express';
import { createGatehouse } from 'gatehouse';
import { gatehouseExpress } from 'gatehouse/express';

const gh = await createGatehouse({
  redis: process.env.REDIS_URL ?? 'memory',
  // Development without SECRET_KEYS: a random key, so sessions end with the process.
  secretKeys: process.env.SECRET_KEYS?.split(',') ?? [randomBytes(32)],
  origin: process.env.ORIGIN ?? 'http://localhost:3000',
  rateLimits: { auth: '5/1m+2', api: '100/1m+10' },
});

const web = gatehouseExpress({ ...gh, secureCookies: process.env.COOKIE_SECURE !== 'false' });
const app = express();
app.use(express.json(), web.authenticate());

// Replace the body check with your own authentication (password, SSO, passkey).
app.post('/signin', web.protect({ rateLimit: { auth: 'ip' } }), (req, res, next) => {
  const { userId } = req.body as { userId: string };
  gh.sessions
    .create({ userId, ip: req.ip ?? null, userAgent: req.get('user-agent') ?? null })
    .then(async ({ token, session }) => {
      web.setSessionCookie(res, token, session);
      res.json({ success: true, data: { sessionToken: token, csrfToken: await gh.csrf.issue(session) } });
    })
    .catch(next);
});

app.get('/me', web.protect({ session: 'required', rateLimit: 'api' }), (req, res) => {
  res.json({ success: true, data: { userId: req.session?.userId } });
});

// Cookie-authenticated unsafe requests need X-CSRF-Token and the service's own origin.
app.post('/notes', web.protect({ session: 'required', rateLimit: 'api' }), (_req, res) => {
  res.status(201).json({ success: true, data: {} });
});

// One render per report at a time, across every instance: others get 409 with Retry-After.
app.post(
  '/reports/:id/pdf',
  web.protect({ session: 'required' }),
  web.lock((req) => `pdf:${String(req.params.id)}`, { ttl: '1m' }),
  (req, res) => {
    res.json({ success: true, data: { fencingToken: req.gatehouseLock?.fencingToken } });
  },
);

app.post('/signout', web.protect({ session: 'required' }), (req, res, next) => {
  web
    .signOut(req, res)
    .then(() => res.status(204).end())
    .catch(next);
});

app.use(web.errorHandler());

const server = app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${String((server.address() as AddressInfo).port)}`);
});

process.once('SIGTERM', () => {
  server.close(() => {
    void gh.close();
  });
});
