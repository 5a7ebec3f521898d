/**
 * Access tokens as the service ties them to sessions: a bearer access token counts only while its
 * session is live and neither it nor its session is on the revocation list; and a session that
 * ends takes its access tokens with it (here and, through the revocation list, on every
 * instance and verifier).
 */
import { StoreUnavailableError } from 'gatehouse';

import { AccessTokens } from './access-tokens.js';
import type { ServiceContext } from './context.js';

/**
 * Access tokens as bearers: a signed, unexpired, unrevoked token whose session is still live
 * (validating the session also counts the use as its activity). Undefined for bearers that are
 * not JWTs, which are then tried as session tokens.
 */
export async function authenticateAccessToken(context: ServiceContext, token: string) {
  if (!AccessTokens.looksLikeJwt(token)) return undefined;
  const claims = await context.accessTokens.verify(token);
  if (!claims) return { session: null, reason: null };
  // The session first: it is what makes a token live, and it validates from SQL in durable mode
  // while Redis is down.
  const result = await context.gh.sessions.validateHandle(claims.sid);
  if (!result.session) return result;
  if (result.session.userId !== claims.sub) return { session: null, reason: null };
  try {
    const revoked = await Promise.all([
      context.gh.revocations.isRevoked(claims.jti),
      context.gh.revocations.isRevoked(`sid:${claims.sid}`),
    ]);
    if (revoked.some(Boolean)) return { session: null, reason: null };
  } catch (error) {
    // Redis is down: the live session (from SQL, with its tombstones) decides alone.
    if (!(error instanceof StoreUnavailableError)) throw error;
  }
  return result;
}

/**
 * Every access token of the session stops verifying here and on every instance: the service
 * refuses them anyway once the session has ended; the entry tells verifiers that only check the
 * revocation list. It lives as long as an access token can verify (its lifetime, the verifiers'
 * clock tolerance and a margin). Best effort: the session is already ended, so a failure here
 * (Redis down) must not turn a sign-out into an error.
 */
export async function revokeAccessTokens(
  context: Pick<ServiceContext, 'gh' | 'accessTokens' | 'audit'>,
  session: { readonly handle: string },
): Promise<void> {
  try {
    await context.gh.revocations.revoke(
      `sid:${session.handle}`,
      Date.now() + context.accessTokens.ttlMs + 30_000,
    );
  } catch (error) {
    context.audit.record({
      type: 'token.revoke-failed',
      outcome: 'failure',
      sessionHash: context.gh.keyRing.auditHash(session.handle),
    });
    if (!(error instanceof StoreUnavailableError)) throw error;
  }
}
