/**
 * Operations routes (docs/http-api.md, "Operations"): /health, /ready, /metrics, /openapi.json and
 * its page, and /admin (the dashboard, packages/server/src/service/routes/admin.ts). They answer
 * bare, without the envelope; the dashboard's data routes (/admin/api/*) use it.
 */
import { randomUUID } from 'node:crypto';

import type { FastifyInstance } from 'fastify';

import type { ServiceContext } from '../context.js';
import { openApiPage } from '../openapi.js';
import { redisReport } from '../redis-report.js';
import { within } from '../within.js';
import { registerAdminRoutes } from './admin.js';

/** /ready answers within this, whatever Redis and the database do. */
const READY_BUDGET_MS = 800;

async function databaseUp(context: ServiceContext, budgetMs: number): Promise<boolean> {
  return within(
    context.db.query('SELECT 1').then(() => true),
    budgetMs,
    false,
  );
}

export function registerOperationsRoutes(app: FastifyInstance, context: ServiceContext): void {
  const { gh, config } = context;
  const instanceId = randomUUID();

  app.get(
    '/health',
    {
      config: { gatehouse: { authenticate: false } },
      schema: { summary: 'Health, with Redis and database facts', tags: ['operations'] },
    },
    async (_request, reply) => {
      const [health, database] = await Promise.all([
        config.store.kind === 'memory' ? null : within(gh.health(), 2000, null),
        databaseUp(context, 2000),
      ]);
      const redis =
        config.store.kind === 'memory'
          ? { status: 'disabled', mode: 'memory' }
          : health
            ? redisReport(health)
            : { status: 'down', mode: config.store.connection.topology, latencyMs: null };
      const degraded =
        !database || context.metrics.isDegraded() || (redis.status !== 'up' && redis.status !== 'disabled');
      return reply.header('Cache-Control', 'no-store').send({
        status: degraded ? 'degraded' : 'healthy',
        version: context.version,
        uptimeSeconds: Math.floor((Date.now() - context.startedAtMs) / 1000),
        redis,
        rateLimits: { degraded: gh.rateLimits.degraded },
        database: { status: database ? 'up' : 'down', kind: context.db.kind },
      });
    },
  );

  app.get(
    '/ready',
    {
      config: { gatehouse: { authenticate: false } },
      schema: { summary: 'Ready: Redis and the database answer a read/write probe', tags: ['operations'] },
    },
    async (_request, reply) => {
      const [redis, database] = await Promise.all([
        within(
          gh.store.probeReadWrite(instanceId, 'ready', 10_000).then(() => true),
          READY_BUDGET_MS,
          false,
        ),
        databaseUp(context, READY_BUDGET_MS),
      ]);
      const ready = redis && database;
      return reply
        .code(ready ? 200 : 503)
        .header('Cache-Control', 'no-store')
        .send({
          status: ready ? 'ready' : 'not-ready',
          redis: redis ? 'up' : 'down',
          database: database ? 'up' : 'down',
        });
    },
  );

  app.get(
    '/metrics',
    {
      config: { gatehouse: { authenticate: false } },
      schema: { summary: 'Prometheus metrics', tags: ['operations'] },
    },
    async (_request, reply) => {
      const text = await context.metrics.registry.metrics();
      return reply
        .header('Content-Type', context.metrics.registry.contentType)
        .header('Cache-Control', 'no-store')
        .send(text);
    },
  );

  app.get(
    '/openapi.json',
    {
      config: { gatehouse: { authenticate: false } },
      schema: { summary: 'This document', tags: ['operations'] },
    },
    (_request, reply) => reply.send(context.openApi.document(context.version)),
  );

  app.get(
    '/docs',
    {
      config: { gatehouse: { authenticate: false } },
      schema: { summary: 'The API, readable', tags: ['operations'] },
    },
    (_request, reply) =>
      reply
        .header('Content-Type', 'text/html; charset=utf-8')
        .header(
          'Content-Security-Policy',
          "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        )
        .send(openApiPage(context.openApi.document(context.version))),
  );

  // The operations dashboard: the page, its script and style, its data, session termination.
  registerAdminRoutes(app, context);
}
