/**
 * An organization's invites and members (docs/http-api.md, "Organizations"). Every member may
 * list the members; only the owner (the role `owner`, which the guard checks before anything
 * else, 403 `FORBIDDEN` for anyone else) invites, lists and revokes invites, and removes members.
 * Audit rows hold ids only: never an email or an invite code.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';

import type { ServiceContext } from '../context.js';
import { endUserSessions } from '../end-user-sessions.js';
import { createInvite, listPendingInvites, revokeInvite } from '../invites.js';
import { ok, sendRefusal } from '../replies.js';
import { requireSession } from '../require-session.js';
import { envelope, errorResponse, idParams, noContent, UUID } from '../schemas.js';
import { listMembers, markRemoved, membershipOf, normalizeEmail } from '../users.js';

const inviteSchema = {
  type: 'object',
  required: ['id', 'email', 'createdAt', 'expiresAt'],
  properties: {
    id: { type: 'string' },
    email: { type: ['string', 'null'], description: 'the only email that may use it, or null for anyone' },
    createdAt: { type: 'string', format: 'date-time' },
    expiresAt: { type: 'string', format: 'date-time' },
  },
} as const;

const memberSchema = {
  type: 'object',
  required: ['id', 'email', 'roles', 'joinedAt'],
  properties: {
    id: { type: 'string' },
    email: { type: 'string' },
    roles: { type: 'array', items: { type: 'string' } },
    joinedAt: { type: 'string', format: 'date-time' },
  },
} as const;

const inviteBody = {
  type: 'object',
  properties: { email: { type: 'string', minLength: 3, maxLength: 320 } },
} as const;

const OWNER = { gatehouse: { roles: ['owner'], rateLimit: 'api' } } as const;
const MEMBER = { gatehouse: { session: 'required', rateLimit: 'api' } } as const;
const refusals = { 401: errorResponse, 403: errorResponse, 429: errorResponse };

/** The caller's organization: every owner has one; a member without one may not act (403). */
function organizationOf(request: FastifyRequest): { userId: string; organizationId: string | null } {
  const session = requireSession(request);
  return { userId: session.userId, organizationId: session.organizationId };
}

export function registerOrganizationRoutes(app: FastifyInstance, context: ServiceContext): void {
  const { db, audit } = context;

  app.post(
    '/api/v1/organizations/invites',
    {
      schema: {
        summary:
          "A single-use code (7 days) to join the caller's organization, optionally for one email (owner)",
        tags: ['organizations'],
        body: inviteBody,
        optionalBody: true,
        response: {
          201: envelope({
            type: 'object',
            properties: {
              inviteCode: { type: 'string' },
              expiresAt: { type: 'string', format: 'date-time' },
              invite: inviteSchema,
            },
          }),
          400: errorResponse,
          409: errorResponse,
          ...refusals,
        },
      },
      // The body is optional: none is an invite for anyone (JSON null is still refused).
      preValidation: (request, _reply, done) => {
        if (request.body === undefined) request.body = {};
        done();
      },
      config: OWNER,
    },
    async (request, reply) => {
      const { userId, organizationId } = organizationOf(request);
      if (organizationId === null) return sendRefusal(reply, 'FORBIDDEN', 'You belong to no organization.');
      const body = request.body as { email?: string };
      const email = body.email === undefined ? null : normalizeEmail(body.email);
      if (email === null && body.email !== undefined) {
        return sendRefusal(reply, 'VALIDATION_ERROR', 'body/email must be an email address');
      }
      const created = await createInvite(db, { organizationId, createdBy: userId, email });
      if (!created) {
        return sendRefusal(
          reply,
          'CONFLICT',
          'The organization has too many pending invites: revoke some first.',
        );
      }
      audit.record({
        type: 'invite.created',
        outcome: 'success',
        userId,
        requestId: request.id,
        details: { inviteId: created.invite.id, emailBound: email !== null },
      });
      return reply
        .code(201)
        .send(ok({ inviteCode: created.code, expiresAt: created.invite.expiresAt, invite: created.invite }));
    },
  );

  app.get(
    '/api/v1/organizations/invites',
    {
      schema: {
        summary: "The organization's pending invites, never a code (owner)",
        tags: ['organizations'],
        response: {
          200: envelope({ type: 'object', properties: { invites: { type: 'array', items: inviteSchema } } }),
          ...refusals,
        },
      },
      config: OWNER,
    },
    async (request, reply) => {
      const { organizationId } = organizationOf(request);
      if (organizationId === null) return sendRefusal(reply, 'FORBIDDEN', 'You belong to no organization.');
      return ok({ invites: await listPendingInvites(db, organizationId) });
    },
  );

  app.delete(
    '/api/v1/organizations/invites/:id',
    {
      schema: {
        summary: 'Revoke a pending invite: its code can no longer be used (owner)',
        tags: ['organizations'],
        params: idParams,
        response: { 204: noContent, 404: errorResponse, ...refusals },
      },
      config: OWNER,
    },
    async (request, reply) => {
      const { userId, organizationId } = organizationOf(request);
      const { id } = request.params as { id: string };
      if (organizationId === null || !UUID.test(id) || !(await revokeInvite(db, organizationId, id))) {
        return sendRefusal(reply, 'NOT_FOUND', 'No such pending invite.');
      }
      audit.record({
        type: 'invite.revoked',
        outcome: 'success',
        userId,
        requestId: request.id,
        details: { inviteId: id },
      });
      return reply.code(204).send();
    },
  );

  app.get(
    '/api/v1/organizations/members',
    {
      schema: {
        summary: "The caller's organization's members",
        tags: ['organizations'],
        response: {
          200: envelope({ type: 'object', properties: { members: { type: 'array', items: memberSchema } } }),
          ...refusals,
        },
      },
      config: MEMBER,
    },
    async (request, reply) => {
      const { organizationId } = organizationOf(request);
      if (organizationId === null) return sendRefusal(reply, 'FORBIDDEN', 'You belong to no organization.');
      return ok({ members: await listMembers(db, organizationId) });
    },
  );

  app.delete(
    '/api/v1/organizations/members/:id',
    {
      schema: {
        summary:
          'Remove a member: every session of theirs ends at once on every instance, and they can no longer sign in (owner)',
        tags: ['organizations'],
        params: idParams,
        response: { 204: noContent, 404: errorResponse, 409: errorResponse, ...refusals },
      },
      config: OWNER,
    },
    async (request, reply) => {
      const { userId, organizationId } = organizationOf(request);
      const { id } = request.params as { id: string };
      const membership =
        organizationId === null || !UUID.test(id) ? null : await membershipOf(db, organizationId, id);
      if (membership === 'owner') {
        return sendRefusal(reply, 'CONFLICT', 'The owner cannot be removed from their own organization.');
      }
      if (membership === null || organizationId === null) {
        return sendRefusal(reply, 'NOT_FOUND', 'No such member.');
      }
      const removed = membership === 'member' && (await markRemoved(db, organizationId, id));
      // Also for a member removed already: a removal whose sessions could not all be ended
      // (Redis did not answer) is finished by asking again, whose answer is then 404.
      const sessionsEnded = await endUserSessions(context, id);
      if (!removed) return sendRefusal(reply, 'NOT_FOUND', 'No such member.');
      audit.record({
        type: 'member.removed',
        outcome: 'success',
        userId,
        requestId: request.id,
        details: { memberId: id, sessionsEnded },
      });
      return reply.code(204).send();
    },
  );
}
