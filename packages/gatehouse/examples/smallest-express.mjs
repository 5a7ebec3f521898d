// The smallest Express app with gatehouse: a session cookie, a protected route, a rate limit.
import { randomBytes } from 'node:crypto';

import express from 'express';
import { createGatehouse } from 'gatehouse';
import { gatehouseExpress } from 'gatehouse/express';

const gh = await createGatehouse({
  redis: process.env.REDIS_URL ?? 'memory', // 'memory': one process only
  secretKeys: process.env.SECRET_KEYS?.split(',') ?? [randomBytes(32)],
  origin: 'http://localhost:3000',
  rateLimits: { api: '100/1m+10' },
});
const web = gatehouseExpress(gh);

const app = express();
app.use(express.json(), web.authenticate());

app.post('/signin', async (req, res) => {
  // Check the user's password (or SSO, or passkey) here first.
  const { token, session } = await gh.sessions.create({ userId: req.body.userId });
  web.setSessionCookie(res, token, session);
  res.json({ sessionToken: token });
});

app.get('/me', web.protect({ session: 'required', rateLimit: 'api' }), (req, res) => {
  res.json({ userId: req.session.userId });
});

app.use(web.errorHandler());
const server = app.listen(Number(process.env.PORT ?? 3000), 'localhost', () => {
  console.log(`listening on http://localhost:${server.address().port}`);
});
