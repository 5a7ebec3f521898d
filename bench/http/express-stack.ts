/**
 * The stack a team would assemble by hand, for the HTTP benchmark: Express 5 with
 * express-session on connect-redis, and express-rate-limit on rate-limit-redis, all on one
 * node-redis client. `GET /api/v1/me` answers the same JSON as the reference service from the
 * session; `POST /bench/signin` (no password: the benchmark measures the per-request layer)
 * stores a user in a new session. Run as a child process by bench/http.ts; prints
 * `listening <port>` once it accepts connections.
 *
 * Env: REDIS_PORT, BODY (the JSON to answer), RATE_LIMIT (requests per minute per user).
 */
import { RedisStore as SessionStore } from 'connect-redis';
import express from 'express';
import { rateLimit } from 'express-rate-limit';
import session, { type Session, type SessionData } from 'express-session';
import { RedisStore as RateLimitStore } from 'rate-limit-redis';
import { createClient } from '@redis/client';

declare module 'express-session' {
  interface SessionData {
    userId: string;
  }
}

/**
 * express-session's `request.session`. (gatehouse's own Express adapter declares a different
 * `request.session` for the whole program, so this file names express-session's explicitly.)
 */
function sessionOf(request: unknown): Session & Partial<SessionData> {
  return (request as { session: Session & Partial<SessionData> }).session;
}

const client = createClient({ socket: { host: '127.0.0.1', port: Number(process.env.REDIS_PORT) } });
await client.connect();
const body = process.env.BODY ?? '{}';

const app = express();
app.disable('x-powered-by');
app.use(
  session({
    store: new SessionStore({ client, prefix: 'bench-sess:' }),
    secret: 'bench-secret-not-for-production',
    name: 'sid',
    resave: false,
    saveUninitialized: false,
    cookie: { httpOnly: true, sameSite: 'lax', secure: false, maxAge: 30 * 60_000 },
  }),
);
app.post('/bench/signin', (request, response) => {
  sessionOf(request).regenerate(() => {
    sessionOf(request).userId = typeof request.query.user === 'string' ? request.query.user : 'anonymous';
    response.status(204).end();
  });
});
app.use(
  '/api',
  rateLimit({
    windowMs: 60_000,
    limit: Number(process.env.RATE_LIMIT ?? 100),
    standardHeaders: 'draft-7',
    legacyHeaders: false,
    keyGenerator: (request) => `user:${sessionOf(request).userId ?? 'anonymous'}`,
    store: new RateLimitStore({
      sendCommand: (...args: string[]) => client.sendCommand(args),
      prefix: 'bench-rl:',
    }),
  }),
);
app.get('/api/v1/me', (request, response) => {
  if (sessionOf(request).userId === undefined) {
    response.status(401).json({ error: { code: 'UNAUTHENTICATED', message: 'Sign in first.' } });
    return;
  }
  response.setHeader('cache-control', 'no-store');
  response.type('application/json').send(body);
});
const server = app.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`listening ${typeof address === 'object' && address ? String(address.port) : ''}\n`);
});
