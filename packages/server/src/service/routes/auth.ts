/**
 * Sign-up, sign-in, sign-out, the current user, CSRF tokens, access tokens and the JWKS
 * (docs/http-api.md, "Accounts and sign-in"). Invites and members are in
 * packages/server/src/service/routes/organizations.ts.
 */
import { randomUUID } from 'node:crypto';

import type { FastifyInstance, FastifyRequest } from 'fastify';

import type { Session } from 'gatehouse';
import { nodeRequestView } from 'gatehouse/fastify';

import type { ServiceContext } from '../context.js';
import { findPendingInvite, useInvite } from '../invites.js';
import { hashPassword, MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH } from '../passwords.js';
import { ok, sendHttpRefusal, sendRefusal } from '../replies.js';
import { requireSession } from '../require-session.js';
import { envelope, errorResponse, noContent, presentSession, sessionSchema, userSchema } from '../schemas.js';
import { revokeAccessTokens } from '../session-access-tokens.js';
import {
  findUserByEmail,
  findUserById,
  insertOrganization,
  insertUser,
  MEMBER_ROLES,
  normalizeEmail,
  OWNER_ROLES,
  presentUser,
  sameAccess,
  UserCache,
  type User,
} from '../users.js';

/** A sign-up refused inside its transaction (rolled back). */
class SignupRefused extends Error {
  constructor(readonly reason: string) {
    super(`sign-up refused: ${reason}`);
  }
}

/** The one answer to a wrong password, an unknown email and a removed member alike. */
const WRONG_CREDENTIALS = 'The email or password is wrong.';
/** The rate-limit policy of failed sign-ins per account (docs/http-api.md, "Rate limits"). */
const ACCOUNT_POLICY = 'account';
const INVITE_INVALID = 'The invite code is used, expired, unknown or for another email.';

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
  const { gh, db, audit } = context;
  const users = new UserCache(db);

  /**
   * A session for `user` that carries what SQL says once it exists. A removal or role change
   * writes SQL first and then ends the user's sessions (packages/server/src/service/end-user-sessions.ts):
   * one that committed while this sign-in ran has either ended this session already, or is seen
   * by reading the user again here, and the session made from the stale read is ended at once.
   */
  async function openSession(
    request: FastifyRequest,
    read: User,
  ): Promise<{ token: string; session: Session; user: User } | 'removed' | 'changing'> {
    let user = read;
    for (let attempt = 1; attempt <= 3; attempt++) {
      const { token, session } = await gh.sessions.create({
        userId: user.id,
        organizationId: user.organizationId,
        roles: user.roles,
        ip: app.gatehouse.clientIp(nodeRequestView(request.raw)),
        userAgent: (request.headers['user-agent'] ?? '').slice(0, 512) || null,
        authMethod: 'password',
      });
      const now = await findUserById(db, user.id).catch(async (error: unknown) => {
        await gh.sessions.revoke(session.handle, { cause: 'terminated' });
        throw error;
      });
      if (now && sameAccess(now, user)) return { token, session, user };
      await gh.sessions.revoke(session.handle, { cause: 'terminated' });
      if (!now) return 'removed';
      user = now;
    }
    return 'changing';
  }

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
      const refuseInvite = (reason: string) => {
        audit.record({
          type: 'invite.refused',
          outcome: 'failure',
          requestId: request.id,
          details: { reason },
        });
        return sendRefusal(reply, 'NONCE_INVALID', INVITE_INVALID);
      };
      const invite = body.inviteCode === undefined ? null : await findPendingInvite(db, body.inviteCode);
      if (body.inviteCode !== undefined && invite === null) return refuseInvite('unknown');
      if (invite && invite.email !== null && invite.email !== email) return refuseInvite('email-mismatch');
      const organizationId = invite ? invite.organizationId : randomUUID();
      const user: User = {
        id: randomUUID(),
        email,
        passwordHash,
        organizationId,
        roles: invite ? MEMBER_ROLES : OWNER_ROLES,
      };
      // One transaction: the user (and a new organization) exist only if the invite was spent,
      // and the invite is spent only by a sign-up that is otherwise accepted (it comes last).
      const outcome = await db
        .transaction(async (tx) => {
          if (!invite) await insertOrganization(tx, organizationId);
          if (!(await insertUser(tx, user))) throw new SignupRefused('email-taken');
          if (invite && !(await useInvite(tx, invite.id, user.id, email))) throw new SignupRefused('used');
          return 'created' as const;
        })
        .catch((error: unknown) => {
          if (error instanceof SignupRefused) return error;
          throw error;
        });
      if (outcome instanceof SignupRefused) {
        if (outcome.reason !== 'email-taken') return refuseInvite(outcome.reason);
        audit.record({
          type: 'user.signup',
          outcome: 'failure',
          requestId: request.id,
          details: { reason: outcome.reason },
        });
        return sendRefusal(reply, 'CONFLICT', 'An account with this email exists.');
      }
      audit.record({
        type: 'user.signup',
        outcome: 'success',
        userId: user.id,
        requestId: request.id,
        details: invite ? { invited: true, inviteId: invite.id } : { invited: false },
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
      // Failed sign-ins are limited per account too: an IP rotation or a botnet gets no fresh
      // guesses at one email. Asked before any database or password work, and the same for an
      // email that has no account (the library HMACs it), so the answer tells nothing about which
      // emails exist; once the allowance is spent, even the right password is refused.
      const account = email ?? body.email.normalize('NFKC').trim().toLowerCase();
      const held = await app.gatehouse.peekAccountLimit(ACCOUNT_POLICY, account);
      // Audited as every 429 is: one row per policy, subject and minute (app.ts).
      if (held.refusal) return sendHttpRefusal(reply, held.refusal);
      const found = email ? await findUserByEmail(db, email) : null;
      // Unknown emails cost a hash too, so the answer's timing does not tell which emails exist;
      // a removed member's own hash is verified, and their answer is a wrong password's.
      const valid = await context.passwords.verify(found?.passwordHash ?? null, body.password);
      if (!found || found.removed || !valid) {
        audit.record({
          type: 'signin',
          outcome: 'failure',
          userId: found?.id ?? null,
          requestId: request.id,
          details: { reason: !found ? 'unknown-email' : found.removed ? 'removed' : 'wrong-password' },
        });
        context.metrics.signinFailures.inc();
        await app.gatehouse.chargeAccountFailure(ACCOUNT_POLICY, account);
        return sendRefusal(reply, 'UNAUTHENTICATED', WRONG_CREDENTIALS);
      }
      // A session the request already carries ends here: no token outlives a sign-in (fixation).
      const previous = request.session;
      if (previous) await gh.sessions.revoke(previous.handle, { cause: 'signin' });
      const opened = await openSession(request, found);
      if (opened === 'removed') {
        audit.record({
          type: 'signin',
          outcome: 'failure',
          userId: found.id,
          requestId: request.id,
          details: { reason: 'removed' },
        });
        context.metrics.signinFailures.inc();
        await app.gatehouse.chargeAccountFailure(ACCOUNT_POLICY, account);
        return sendRefusal(reply, 'UNAUTHENTICATED', WRONG_CREDENTIALS);
      }
      if (opened === 'changing') {
        return sendRefusal(reply, 'SERVICE_UNAVAILABLE', 'The account is being changed; sign in again.', {
          'Retry-After': '1',
        });
      }
      const { token, session, user } = opened;
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
      // Roles and organization as the session carries them: a change ends the session, so these
      // are never stale, where the cached row could be.
      return ok({
        user: {
          ...user,
          organizationId: session.organizationId ?? user.organizationId,
          roles: [...session.roles],
        },
        session: presentSession(session, session.handle),
      });
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
}
