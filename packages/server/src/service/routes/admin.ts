/**
 * The operations dashboard's routes (role `admin`, docs/http-api.md, "Operations"): the page, its
 * script and style, its data (`/admin/api/overview`, computed by
 * packages/server/src/service/admin-overview.ts) and ending any user's session by its handle.
 */
import type { FastifyInstance } from 'fastify';

import { adminOverview, forgetOverview } from '../admin-overview.js';
import { ADMIN_CSP, renderAdminPage } from '../admin-page/page.js';
import { DASHBOARD_JS } from '../admin-page/script.js';
import { DASHBOARD_CSS } from '../admin-page/style.js';
import type { ServiceContext } from '../context.js';
import { ok, sendRefusal } from '../replies.js';
import { requireSession } from '../require-session.js';
import { envelope, errorResponse, noContent } from '../schemas.js';
import { revokeAccessTokens } from '../session-access-tokens.js';

const SESSION_CAUSE = 'terminated';

const handleParams = {
  type: 'object',
  required: ['handle'],
  properties: { handle: { type: 'string', minLength: 1, maxLength: 256 } },
} as const;

const looseObject = { type: 'object', additionalProperties: true } as const;

const overviewSchema = envelope({
  type: 'object',
  properties: {
    generatedAt: { type: 'string', format: 'date-time' },
    instance: looseObject,
    redis: looseObject,
    counters: looseObject,
    sessions: looseObject,
    history: { type: 'array', items: looseObject },
  },
});

/** GET /admin, its script and style, the overview and session termination. */
export function registerAdminRoutes(app: FastifyInstance, context: ServiceContext): void {
  const guard = { gatehouse: { roles: ['admin'], rateLimit: 'api' } };
  const forbidden = { 401: errorResponse, 403: errorResponse, 429: errorResponse };

  app.get(
    '/admin',
    {
      schema: { summary: 'The operations dashboard (role admin)', tags: ['operations'] },
      config: guard,
    },
    (_request, reply) =>
      reply
        .header('Content-Type', 'text/html; charset=utf-8')
        .header('Cache-Control', 'no-store')
        .header('Content-Security-Policy', ADMIN_CSP)
        .send(renderAdminPage()),
  );

  app.get(
    '/admin/dashboard.js',
    {
      schema: { summary: "The dashboard's script (role admin)", tags: ['operations'] },
      config: guard,
    },
    (_request, reply) =>
      reply
        .header('Content-Type', 'text/javascript; charset=utf-8')
        .header('Cache-Control', 'no-store')
        .send(DASHBOARD_JS),
  );

  app.get(
    '/admin/dashboard.css',
    {
      schema: { summary: "The dashboard's style sheet (role admin)", tags: ['operations'] },
      config: guard,
    },
    (_request, reply) =>
      reply
        .header('Content-Type', 'text/css; charset=utf-8')
        .header('Cache-Control', 'no-store')
        .send(DASHBOARD_CSS),
  );

  app.get(
    '/admin/api/overview',
    {
      schema: {
        summary:
          "The dashboard's data: this instance's counters, Redis health, the degraded flag, live sessions (role admin)",
        tags: ['operations'],
        response: { 200: overviewSchema, ...forbidden },
      },
      config: guard,
    },
    async (request, reply) => {
      const current = requireSession(request);
      void reply.header('Cache-Control', 'no-store');
      return ok(await adminOverview(context, current, request.log));
    },
  );

  app.post(
    '/admin/api/sessions/:handle/terminate',
    {
      schema: {
        summary: "End any user's session by its handle (role admin)",
        tags: ['operations'],
        params: handleParams,
        response: { 204: noContent, 404: errorResponse, ...forbidden },
      },
      config: guard,
    },
    async (request, reply) => {
      const admin = requireSession(request);
      const { handle } = request.params as { handle: string };
      if (!(await context.gh.sessions.revoke(handle, { cause: SESSION_CAUSE }))) {
        return sendRefusal(reply, 'NOT_FOUND', 'No such live session.');
      }
      await revokeAccessTokens(context, { handle });
      context.audit.record({
        type: 'admin.session-terminated',
        outcome: 'success',
        userId: admin.userId,
        sessionHash: context.gh.keyRing.auditHash(handle),
        requestId: request.id,
      });
      // The next overview shows the session gone.
      forgetOverview(context);
      return reply.code(204).send();
    },
  );
}
