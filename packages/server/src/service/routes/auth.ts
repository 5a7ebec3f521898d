/**
 * Sign-up, sign-in, sign-out, the current user, CSRF tokens, access tokens and the JWKS, and
 * organization invites (docs/http-api.md, "Accounts and sign-in" and "Organizations").
 */
import { randomUUID } from 'node:crypto';

import type { FastifyInstance, FastifyRequest } from 'fastify';

import { nodeRequestView } from 'gatehouse/fastify';

import type { ServiceContext } from '../context.js';
import { hashPassword, MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH } from '../passwords.js';
import { ok, sendRefusal } from '../replies.js';
import { requireSession } from '../require-session.js';
import { envelope, errorResponse, noContent, presentSession, sessionSchema, userSchema } from '../schemas.js';
import { revokeAccessTokens } from '../session-access-tokens.js';
import {
  findUserByEmail,
  insertOrganization,
  insertUser,
  normalizeEmail,
  organizationExists,
  presentUser,
  UserCache,
} from '../users.js';

/** A sign-up refused inside its transaction (rolled back). */
class SignupRefused extends Error {
  constructor(readonly reason: string) {
    super(`sign-up refused: ${reason}`);
  }
}

/** Invite codes live 7 days. */
export const INVITE_TTL_MS = 7 * 24 * 60 * 60 * 1000;
const INVITE_PURPOSE = (organizationId: string) => `invite:${organizationId}`;

const credentials = {
  type: 'object',
  required: ['email', 'password'],
  properties: {
    email: { type: 'string', minLength: 3, maxLength: 320 },
    password: { type: 'string', minLength: 1, maxLength: MAX_PASSWORD_LENGTH },
  },
} as const;

const signupBody = {
  type: 'object',
  required: ['email', 'password'],
  properties: {
    email: { type: 'string', minLength: 3, maxLength: 320 },
    password: { type: 'string', minLength: MIN_PASSWORD_LENGTH, maxLength: MAX_PASSWORD_LENGTH },
    inviteCode: { type: 'string', minLength: 1, maxLength: 512 },
  },
} as const;

/** An invite code: the organization id and a nonce bound to it, `<base64url org id>.<nonce>`. */
function inviteCode(organizationId: string, nonce: string): string {
  return `${Buffer.from(organizationId).toString('base64url')}.${nonce}`;
}

function parseInviteCode(code: string): { organizationId: string; nonce: string } | null {
  const dot = code.indexOf('.');
  if (dot < 1) return null;
  const organizationId = Buffer.from(code.slice(0, dot), 'base64url').toString('utf8');
  if (!/^[0-9a-f-]{36}$/.test(organizationId)) return null;
  return { organizationId, nonce: code.slice(dot + 1) };
}

/**
 * Sign-in and sign-up carry no session to protect, but a browser must not be made to sign in
 * from another site (login CSRF): when a browser says where the request comes from, it must be
 * the service's own origin. Clients that send neither header (API clients) pass.
 */
function crossSiteSignIn(context: ServiceContext, request: FastifyRequest): boolean {
  const secFetchSite = request.headers['sec-fetch-site'];
  const origin = request.headers.origin;
  if (secFetchSite === undefined && origin === undefined) return false;
  const result = context.gh.csrf.checkRequest({
    method: request.method,
    secFetchSite: typeof secFetchSite === 'string' ? secFetchSite : undefined,
    origin,
    host: request.headers.host,
  });
  return !result.ok;
}

export function registerAuthRoutes(app: FastifyInstance, context: ServiceContext): void {
  const { gh, db, audit, config } = context;
  const users = new UserCache(db);

  app.post(
    '/api/v1/auth/signup',
    {
      schema: {
        summary: 'Create an account (and an organization, unless an invite code names one)',
        tags: ['auth'],
        body: signupBody,
        response: {
          201: envelope({ type: 'object', properties: { user: userSchema } }),
          400: errorResponse,
          409: errorResponse,
          429: errorResponse,
        },
      },
      config: { gatehouse: { rateLimit: { auth: 'ip' }, csrf: false } },
    },
    async (request, reply) => {
      if (crossSiteSignIn(context, request))
        return sendRefusal(reply, 'CSRF_INVALID', 'Sign up from the service itself.');
      const body = request.body as { email: string; password: string; inviteCode?: string };
      const email = normalizeEmail(body.email);
      if (!email) return sendRefusal(reply, 'VALIDATION_ERROR', 'body/email must be an email address');
      // Everything that can refuse the sign-up comes before the invite is spent.
      if (await findUserByEmail(db, email)) {
        audit.record({
          type: 'user.signup',
          outcome: 'failure',
          requestId: request.id,
          details: { reason: 'email-taken' },
        });
        return sendRefusal(reply, 'CONFLICT', 'An account with this email exists.');
      }
      const passwordHash = await hashPassword(body.password);
      const invite = body.inviteCode === undefined ? undefined : parseInviteCode(body.inviteCode);
      if (invite === null || (invite && !(await organizationExists(db, invite.organizationId)))) {
        audit.record({
          type: 'invite.refused',
          outcome: 'failure',
          requestId: request.id,
          details: { reason: 'invalid' },
        });
        return sendRefusal(reply, 'NONCE_INVALID', 'The invite code is used, expired or unknown.');
      }
      const organizationId = invite ? invite.organizationId : randomUUID();
      const roles = config.adminEmails.includes(email) ? ['member', 'admin'] : ['member'];
      const user = { id: randomUUID(), email, passwordHash, organizationId, roles };
      // One transaction: the user (and a new organization) exist only if the invite was spent,
      // and the invite is spent only by a sign-up that is otherwise accepted (it comes last).
      const outcome = await db
        .transaction(async (tx) => {
          if (!invite) await insertOrganization(tx, organizationId);
          if (!(await insertUser(tx, user))) throw new SignupRefused('email-taken');
          if (invite) {
            const used = await gh.nonces.consume(INVITE_PURPOSE(invite.organizationId), invite.nonce);
            if (!used.ok) throw new SignupRefused(used.reason);
          }
          return 'created' as const;
        })
        .catch((error: unknown) => {
          if (error instanceof SignupRefused) return error;
          throw error;
        });
      if (outcome instanceof SignupRefused) {
        audit.record({
          type: outcome.reason === 'email-taken' ? 'user.signup' : 'invite.refused',
          outcome: 'failure',
          requestId: request.id,
          details: { reason: outcome.reason },
        });
        return outcome.reason === 'email-taken'
          ? sendRefusal(reply, 'CONFLICT', 'An account with this email exists.')
          : sendRefusal(reply, 'NONCE_INVALID', 'The invite code is used, expired or unknown.');
      }
      audit.record({
        type: 'user.signup',
        outcome: 'success',
        userId: user.id,
        requestId: request.id,
        details: { invited: body.inviteCode !== undefined },
      });
      return reply.code(201).send(ok({ user: presentUser(user) }));
    },
  );

  app.post(
    '/api/v1/auth/signin',
    {
      schema: {
        summary: 'Sign in: a session (cookie and token), a CSRF token and an access token',
        tags: ['auth'],
        body: credentials,
        response: {
          200: envelope({
            type: 'object',
            properties: {
              user: userSchema,
              session: sessionSchema,
              sessionToken: { type: 'string' },
              csrfToken: { type: 'string' },
              accessToken: { type: 'string' },
            },
          }),
          401: errorResponse,
          429: errorResponse,
        },
      },
      config: { gatehouse: { rateLimit: { auth: 'ip' }, csrf: false } },
    },
    async (request, reply) => {
      if (crossSiteSignIn(context, request))
        return sendRefusal(reply, 'CSRF_INVALID', 'Sign in from the service itself.');
      const body = request.body as { email: string; password: string };
      const email = normalizeEmail(body.email);
      const user = email ? await findUserByEmail(db, email) : null;
      // Unknown emails cost a hash too, so the answer's timing does not tell which emails exist.
      const valid = await context.passwords.verify(user?.passwordHash ?? null, body.password);
      if (!user || !valid) {
        audit.record({
          type: 'signin',
          outcome: 'failure',
          userId: user?.id ?? null,
          requestId: request.id,
          details: { reason: user ? 'wrong-password' : 'unknown-email' },
        });
        context.metrics.signinFailures.inc();
        return sendRefusal(reply, 'UNAUTHENTICATED', 'The email or password is wrong.');
      }
      // A session the request already carries ends here: no token outlives a sign-in (fixation).
      const previous = request.session;
      if (previous) await gh.sessions.revoke(previous.handle, { cause: 'signin' });
      const { token, session } = await gh.sessions.create({
        userId: user.id,
        organizationId: user.organizationId,
        roles: user.roles,
        ip: app.gatehouse.clientIp(nodeRequestView(request.raw)),
        userAgent: (request.headers['user-agent'] ?? '').slice(0, 512) || null,
        authMethod: 'password',
      });
      const [csrfToken, access] = await Promise.all([
        gh.csrf.issue(session),
        context.accessTokens.issue({
          sub: user.id,
          sid: session.handle,
          org: session.organizationId,
          roles: session.roles,
        }),
      ]);
      audit.record({
        type: 'signin',
        outcome: 'success',
        userId: user.id,
        sessionHash: gh.keyRing.auditHash(session.handle),
        requestId: request.id,
      });
      void reply
        .header('Set-Cookie', app.gatehouse.sessionCookie(token, session))
        .header('X-Session-ID', session.handle)
        .header('Cache-Control', 'no-store');
      return ok({
        user: presentUser(user),
        session: presentSession(session, session.handle),
        sessionToken: token,
        csrfToken,
        accessToken: access.token,
      });
    },
  );

  app.post(
    '/api/v1/auth/signout',
    {
      schema: {
        summary: 'End the current session everywhere',
        tags: ['auth'],
        response: { 204: noContent, 401: errorResponse, 403: errorResponse },
      },
      config: { gatehouse: { session: 'required', rateLimit: 'api' } },
    },
    async (request, reply) => {
      const auth = request.gatehouseAuth;
      const session = request.session;
      if (!auth || !session) return sendRefusal(reply, 'UNAUTHENTICATED', 'Sign in first.');
      const headers = await app.gatehouse.signOut(auth);
      await revokeAccessTokens(context, session);
      audit.record({
        type: 'signout',
        outcome: 'success',
        userId: session.userId,
        sessionHash: gh.keyRing.auditHash(session.handle),
        requestId: request.id,
      });
      return reply.code(204).headers(headers).send();
    },
  );

  app.get(
    '/api/v1/auth/csrf',
    {
      schema: {
        summary: 'A fresh CSRF token for the current session',
        tags: ['auth'],
        response: {
          200: envelope({ type: 'object', properties: { csrfToken: { type: 'string' } } }),
          401: errorResponse,
        },
      },
      config: { gatehouse: { session: 'required', rateLimit: 'api' } },
    },
    async (request) => ok({ csrfToken: await gh.csrf.issue(requireSession(request)) }),
  );

  app.get(
    '/api/v1/me',
    {
      schema: {
        summary: 'The current user and session',
        tags: ['auth'],
        response: {
          200: envelope({ type: 'object', properties: { user: userSchema, session: sessionSchema } }),
          401: errorResponse,
        },
      },
      config: { gatehouse: { session: 'required', rateLimit: 'api' } },
    },
    async (request, reply) => {
      const session = requireSession(request);
      const user = await users.find(session.userId);
      if (!user) return sendRefusal(reply, 'UNAUTHENTICATED', 'The account no longer exists.');
      return ok({ user, session: presentSession(session, session.handle) });
    },
  );

  app.post(
    '/api/v1/auth/token',
    {
      schema: {
        summary: 'A fresh access token for the current session (not with an access token)',
        tags: ['auth'],
        response: {
          200: envelope({ type: 'object', properties: { accessToken: { type: 'string' } } }),
          401: errorResponse,
          403: errorResponse,
        },
      },
      config: { gatehouse: { session: 'required', rateLimit: 'api' } },
    },
    async (request, reply) => {
      const session = requireSession(request);
      if (request.gatehouseAuth?.via === 'access-token') {
        return sendRefusal(reply, 'FORBIDDEN', 'An access token cannot mint another; use the session.');
      }
      const access = await context.accessTokens.issue({
        sub: session.userId,
        sid: session.handle,
        org: session.organizationId,
        roles: session.roles,
      });
      return ok({ accessToken: access.token });
    },
  );

  app.get(
    '/.well-known/jwks.json',
    {
      schema: { summary: 'Public keys that verify access tokens (RFC 7517)', tags: ['auth'] },
      config: { gatehouse: { authenticate: false } },
    },
    (_request, reply) =>
      reply.header('Cache-Control', 'public, max-age=300').send(context.accessTokens.jwks()),
  );

  app.post(
    '/api/v1/organizations/invites',
    {
      schema: {
        summary: "A single-use code (7 days) to join the caller's organization",
        tags: ['organizations'],
        response: {
          201: envelope({
            type: 'object',
            properties: {
              inviteCode: { type: 'string' },
              expiresAt: { type: 'string', format: 'date-time' },
            },
          }),
          401: errorResponse,
        },
      },
      config: { gatehouse: { session: 'required', rateLimit: 'api' } },
    },
    async (request, reply) => {
      const session = requireSession(request);
      const organizationId = session.organizationId;
      if (organizationId === null) return sendRefusal(reply, 'FORBIDDEN', 'You belong to no organization.');
      const { nonce, expiresAtMs } = await gh.nonces.issue(INVITE_PURPOSE(organizationId), {
        ttl: INVITE_TTL_MS,
      });
      audit.record({
        type: 'invite.created',
        outcome: 'success',
        userId: session.userId,
        requestId: request.id,
      });
      return reply.code(201).send(
        ok({
          inviteCode: inviteCode(organizationId, nonce),
          expiresAt: new Date(expiresAtMs).toISOString(),
        }),
      );
    },
  );
}
