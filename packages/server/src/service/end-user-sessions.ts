/**
 * Ending every session of one user because what they may do changed: the owner removed them
 * from the organization, or a service-wide role was granted or taken away. A session carries its
 * roles and organization from sign-in to its end, so such a change holds only once the user's
 * sessions have ended: every instance refuses them within the bound of docs/http-api.md
 * ("Sessions"), their event streams end with `terminated`, their access tokens go on the
 * revocation list, and in durable mode their SQL copies become tombstones.
 *
 * The change is written to SQL first and the sessions are ended after it, so a sign-in that
 * read the user before the change either made its session before this ends them all, or reads
 * the user again after making it and sees the change (packages/server/src/service/routes/auth.ts).
 */
import type { ServiceContext } from './context.js';
import { revokeAccessTokens } from './session-access-tokens.js';

/** What ending a user's sessions works with: the service's context, or the CLI's. */
export type SessionEnder = Pick<ServiceContext, 'gh' | 'accessTokens' | 'audit'>;

/** Ends every session of the user on every instance, with their access tokens; how many ended. */
export async function endUserSessions(context: SessionEnder, userId: string): Promise<number> {
  // Listed first for their handles: the access tokens are revoked by session.
  const sessions = await context.gh.sessions.list(userId);
  const ended = await context.gh.sessions.revokeAll(userId);
  await Promise.all(sessions.map((session) => revokeAccessTokens(context, session)));
  return ended;
}
