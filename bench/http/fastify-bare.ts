/**
 * The ceiling for the HTTP benchmark: a bare Fastify route answering the same JSON as the
 * reference service's `GET /api/v1/me`, with no session, no rate limit and no Redis. Run as a
 * child process by bench/http.ts; prints `listening <port>` once it accepts connections.
 *
 * Env: BODY, the exact JSON to answer.
 */
import Fastify from 'fastify';

const body = process.env.BODY ?? '{}';
const app = Fastify({ logger: false });
app.get('/api/v1/me', async (_request, reply) => {
  reply.header('content-type', 'application/json; charset=utf-8');
  return body;
});
const address = await app.listen({ host: '127.0.0.1', port: 0 });
process.stdout.write(`listening ${new URL(address).port}\n`);
