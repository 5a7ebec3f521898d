// A complete Express 5 (or 4) service with gatehouse: sessions (cookie or bearer), CSRF, a rate
// limit, and a lock. Run: REDIS_URL=redis://127.0.0.1:6379 SECRET_KEYS=<64 hex chars> node --import tsx express.ts
import type { AddressInfo } from 'node:net';

import express from 'express';
import { createStore, Csrf, KeyRing, Locks, parseRedisUrl, RateLimits, Sessions } from 'gatehouse';
import { gatehouseExpress } from 'gatehouse/express';

const store = createStore({ redis: process.env.REDIS_URL ? parseRedisUrl(process.env.REDIS_URL) : 'memory' });
const keyRing = process.env.SECRET_KEYS
  ? new KeyRing(process.env.SECRET_KEYS.split(',').map((key) => Buffer.from(key, 'hex')))
  : KeyRing.random(); // development only: sessions end with the process
const sessions = new Sessions(store, keyRing);
const csrf = new Csrf(store, keyRing, { ownOrigin: process.env.ORIGIN ?? 'http://localhost:3000' });
const rateLimits = new RateLimits(store, keyRing, { policies: { auth: '5/1m+2', api: '100/1m+10' } });
const locks = new Locks(store, keyRing);

const gh = gatehouseExpress({
  sessions,
  csrf,
  rateLimits,
  locks,
  secureCookies: process.env.COOKIE_SECURE !== 'false',
});
const app = express();
app.use(express.json(), gh.authenticate());

// Replace the body check with your own authentication (password, SSO, passkey).
app.post('/signin', gh.protect({ rateLimit: { auth: 'ip' } }), (req, res, next) => {
  const { userId } = req.body as { userId: string };
  sessions
    .create({ userId, ip: req.ip ?? null, userAgent: req.get('user-agent') ?? null })
    .then(async ({ token, session }) => {
      gh.setSessionCookie(res, token, session);
      res.json({ success: true, data: { sessionToken: token, csrfToken: await csrf.issue(session) } });
    })
    .catch(next);
});

app.get('/me', gh.protect({ session: 'required', rateLimit: 'api' }), (req, res) => {
  res.json({ success: true, data: { userId: req.session?.userId } });
});

// Cookie-authenticated unsafe requests need X-CSRF-Token and the service's own origin.
app.post('/notes', gh.protect({ session: 'required', rateLimit: 'api' }), (_req, res) => {
  res.status(201).json({ success: true, data: {} });
});

// One render per report at a time, across every instance: others get 409 with Retry-After.
app.post(
  '/reports/:id/pdf',
  gh.protect({ session: 'required' }),
  gh.lock((req) => `pdf:${String(req.params.id)}`, { ttl: '1m' }),
  (req, res) => {
    res.json({ success: true, data: { fencingToken: req.gatehouseLock?.fencingToken } });
  },
);

app.post('/signout', gh.protect({ session: 'required' }), (req, res, next) => {
  gh.signOut(req, res)
    .then(() => res.status(204).end())
    .catch(next);
});

const server = app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${String((server.address() as AddressInfo).port)}`);
});

process.once('SIGTERM', () => {
  server.close(() => {
    void sessions.close().then(() => store.close());
  });
});
