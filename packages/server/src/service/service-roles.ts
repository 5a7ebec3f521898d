/**
 * Service-wide roles (`admin`: the operations dashboard), granted and taken away by command only
 * (`gatehouse users grant-role|revoke-role EMAIL admin`, packages/server/src/cli/users.ts): no
 * request to the service can make anyone an admin. `owner` and `member` are organization roles,
 * given by sign-up and invites, and never changed here.
 *
 * A change is written to SQL, audited (the user id and the role, never the email), and then ends
 * every session of the user (packages/server/src/service/end-user-sessions.ts): the next sign-in
 * carries the new roles, and no session keeps the old ones.
 */
import type { AuditEvent } from './audit.js';
import type { Database } from './db.js';
import { endUserSessions, type SessionEnder } from './end-user-sessions.js';
import { addRole, findUserByEmail, removeRole } from './users.js';

/** The roles this module grants and revokes. */
export const SERVICE_ROLES: readonly string[] = ['admin'];

export type RoleChange = 'grant' | 'revoke';

/** What a role change works with; `audit.append` is awaited, so the row is written before it returns. */
export interface RoleChanger extends SessionEnder {
  readonly db: Database;
  readonly audit: SessionEnder['audit'] & { append(event: AuditEvent): Promise<unknown> };
}

export type RoleChangeOutcome =
  /** The roles changed, the change is audited, and `sessionsEnded` sessions ended. */
  | {
      readonly kind: 'changed';
      readonly userId: string;
      readonly roles: readonly string[];
      readonly sessionsEnded: number;
    }
  /** The user held the role already (grant) or did not hold it (revoke): nothing changed. */
  | { readonly kind: 'unchanged'; readonly userId: string; readonly roles: readonly string[] }
  /** No account has that email. */
  | { readonly kind: 'unknown-email' }
  /** The account was removed from its organization: it cannot sign in, so granting is refused. */
  | { readonly kind: 'removed'; readonly userId: string };

/**
 * Grants or revokes the service role `role` of the user with the normalised `email`. Throws a
 * RangeError for a role outside {@link SERVICE_ROLES}; a failure after the SQL write (the audit
 * append, Redis) rejects with the role already changed: ending the sessions again finishes it.
 */
export async function changeServiceRole(
  context: RoleChanger,
  input: { readonly email: string; readonly role: string; readonly change: RoleChange },
): Promise<RoleChangeOutcome> {
  if (!SERVICE_ROLES.includes(input.role)) {
    throw new RangeError(`only ${SERVICE_ROLES.join(', ')} can be granted or revoked`);
  }
  const user = await findUserByEmail(context.db, input.email);
  if (!user) return { kind: 'unknown-email' };
  if (input.change === 'grant' && user.removed) return { kind: 'removed', userId: user.id };
  const roles =
    input.change === 'grant'
      ? await addRole(context.db, user.id, input.role)
      : await removeRole(context.db, user.id, input.role);
  if (roles === null) {
    // Held already (grant) or not held (revoke); a grant can also meet a removal made meanwhile.
    return { kind: 'unchanged', userId: user.id, roles: user.roles };
  }
  await context.audit.append({
    type: input.change === 'grant' ? 'role.granted' : 'role.revoked',
    outcome: 'success',
    userId: user.id,
    details: { role: input.role },
  });
  const sessionsEnded = await endUserSessions(context, user.id);
  return { kind: 'changed', userId: user.id, roles, sessionsEnded };
}
