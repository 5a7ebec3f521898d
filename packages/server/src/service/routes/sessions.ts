/** The caller's sessions: list, end one, end all others (docs/http-api.md, "Sessions"). */
import type { FastifyInstance } from 'fastify';

import type { ServiceContext } from '../context.js';
import { ok, sendRefusal } from '../replies.js';
import { requireSession } from '../require-session.js';
import { envelope, errorResponse, idParams, noContent, presentSession, sessionSchema } from '../schemas.js';
import { revokeAccessTokens } from '../session-access-tokens.js';

export function registerSessionRoutes(app: FastifyInstance, context: ServiceContext): void {
  const { gh, audit } = context;

  app.get(
    '/api/v1/sessions',
    {
      schema: {
        summary: "The caller's live sessions (handles, never tokens)",
        tags: ['sessions'],
        response: {
          200: envelope({
            type: 'object',
            properties: { sessions: { type: 'array', items: sessionSchema }, count: { type: 'integer' } },
          }),
          401: errorResponse,
        },
      },
      config: { gatehouse: { session: 'required', rateLimit: 'api' } },
    },
    async (request) => {
      const current = requireSession(request);
      const sessions = await gh.sessions.list(current.userId);
      return ok({
        sessions: sessions.map((session) => presentSession(session, current.handle)),
        count: sessions.length,
      });
    },
  );

  app.delete(
    '/api/v1/sessions/:id',
    {
      schema: {
        summary: "End one of the caller's sessions",
        tags: ['sessions'],
        params: idParams,
        response: { 204: noContent, 401: errorResponse, 404: errorResponse },
      },
      config: { gatehouse: { session: 'required', rateLimit: 'api' } },
    },
    async (request, reply) => {
      const current = requireSession(request);
      const { id } = request.params as { id: string };
      const sessions = await gh.sessions.list(current.userId);
      const target = sessions.find((session) => session.handle === id);
      // Someone else's handle, an ended one and a malformed one all look the same: not found.
      if (!target || !(await gh.sessions.revoke(id, { userId: current.userId, cause: 'terminated' }))) {
        return sendRefusal(reply, 'NOT_FOUND', 'No such session.');
      }
      await revokeAccessTokens(context, target);
      audit.record({
        type: 'session.terminated',
        outcome: 'success',
        userId: current.userId,
        sessionHash: gh.keyRing.auditHash(id),
        requestId: request.id,
      });
      if (id === current.handle && request.gatehouseAuth) {
        // Ending the current session also clears its cookie (the session is gone already).
        void reply.headers(await app.gatehouse.signOut({ ...request.gatehouseAuth, session: null }));
      }
      return reply.code(204).send();
    },
  );

  app.delete(
    '/api/v1/sessions',
    {
      schema: {
        summary: "End all of the caller's sessions but the current one",
        tags: ['sessions'],
        response: {
          200: envelope({ type: 'object', properties: { terminated: { type: 'integer' } } }),
          401: errorResponse,
        },
      },
      config: { gatehouse: { session: 'required', rateLimit: 'api' } },
    },
    async (request) => {
      const current = requireSession(request);
      const others = (await gh.sessions.list(current.userId)).filter(
        (session) => session.handle !== current.handle,
      );
      const terminated = await gh.sessions.revokeOthers(current.userId, current.handle);
      await Promise.all(others.map((session) => revokeAccessTokens(context, session)));
      audit.record({
        type: 'session.terminated-others',
        outcome: 'success',
        userId: current.userId,
        requestId: request.id,
        details: { count: terminated },
      });
      return ok({ terminated });
    },
  );
}
