/**
 * Invites into an organization, in SQL (docs/http-api.md, "Organizations"): a code of 256 random
 * bits, stored only as its SHA-256 (like session tokens: a stolen table names no usable code),
 * good for one sign-up within {@link INVITE_TTL_MS}, optionally bound to one normalised email.
 *
 * A code is spent inside the sign-up's transaction by one conditional UPDATE, so of two sign-ups
 * with one code exactly one commits (PostgreSQL re-checks the condition on the row the first one
 * changed; PGlite runs one transaction at a time), and a sign-up refused for any reason leaves it
 * usable.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';

import type { SqlQueryable } from 'gatehouse';

/** Invite codes live 7 days. */
export const INVITE_TTL_MS = 7 * 24 * 60 * 60 * 1000;
/**
 * Pending invites one organization may have at once: the list is answered whole, so it is
 * bounded. Checked before the insert, so concurrent creations can pass it by a few.
 */
export const MAX_PENDING_INVITES = 500;
const CODE_BYTES = 32;
const CODE_SHAPE = /^[A-Za-z0-9_-]{43}$/;

/** An invite as the API shows one: never its code. */
export interface Invite {
  readonly id: string;
  /** The only email that may use it, or null for anyone. */
  readonly email: string | null;
  readonly createdAt: string;
  readonly expiresAt: string;
}

/** A pending invite a sign-up presented, found by its code. */
export interface PresentedInvite {
  readonly id: string;
  readonly organizationId: string;
  readonly email: string | null;
}

interface InviteRow {
  id: string;
  email: string | null;
  created_at: Date | string;
  expires_at: Date | string;
}

function toInvite(row: InviteRow): Invite {
  return {
    id: row.id,
    email: row.email,
    createdAt: new Date(row.created_at).toISOString(),
    expiresAt: new Date(row.expires_at).toISOString(),
  };
}

function codeHash(code: string): string {
  return createHash('sha256').update(code, 'utf8').digest('hex');
}

const PENDING = 'used_at IS NULL AND revoked_at IS NULL AND expires_at > now()';

/**
 * A new invite of the organization, made by `createdBy`; the code is in the answer only. Null
 * when the organization has {@link MAX_PENDING_INVITES} pending already.
 */
export async function createInvite(
  db: SqlQueryable,
  input: { organizationId: string; createdBy: string; email: string | null },
): Promise<{ code: string; invite: Invite } | null> {
  const code = randomBytes(CODE_BYTES).toString('base64url');
  const { rows } = await db.query(
    `INSERT INTO invites (id, organization_id, code_hash, email, created_by, expires_at)
     SELECT $1, $2, $3, $4, $5, now() + make_interval(secs => $6::double precision)
      WHERE (SELECT count(*) FROM invites WHERE organization_id = $2 AND ${PENDING}) < $7
     RETURNING id, email, created_at, expires_at`,
    [
      randomUUID(),
      input.organizationId,
      codeHash(code),
      input.email,
      input.createdBy,
      INVITE_TTL_MS / 1000,
      MAX_PENDING_INVITES,
    ],
  );
  const row = rows[0] as InviteRow | undefined;
  return row ? { code, invite: toInvite(row) } : null;
}

/** The organization's pending invites (neither used, revoked nor expired), oldest first. */
export async function listPendingInvites(db: SqlQueryable, organizationId: string): Promise<Invite[]> {
  const { rows } = await db.query(
    `SELECT id, email, created_at, expires_at FROM invites
      WHERE organization_id = $1 AND ${PENDING} ORDER BY created_at, id`,
    [organizationId],
  );
  return (rows as InviteRow[]).map(toInvite);
}

/** Revokes a pending invite of the organization; false when it has none of that id. */
export async function revokeInvite(db: SqlQueryable, organizationId: string, id: string): Promise<boolean> {
  const { rows } = await db.query(
    `UPDATE invites SET revoked_at = now() WHERE id = $1 AND organization_id = $2 AND ${PENDING} RETURNING id`,
    [id, organizationId],
  );
  return rows.length === 1;
}

/** The pending invite whose code this is, or null (malformed, unknown, used, revoked, expired). */
export async function findPendingInvite(db: SqlQueryable, code: string): Promise<PresentedInvite | null> {
  if (!CODE_SHAPE.test(code)) return null;
  const { rows } = await db.query(
    `SELECT id, organization_id, email FROM invites WHERE code_hash = $1 AND ${PENDING}`,
    [codeHash(code)],
  );
  const row = rows[0] as { id: string; organization_id: string; email: string | null } | undefined;
  return row ? { id: row.id, organizationId: row.organization_id, email: row.email } : null;
}

/**
 * Spends the invite for the user `usedBy` (inserted in the same transaction) signing up with
 * `email`; false when it is no longer pending or is bound to another email.
 */
export async function useInvite(
  tx: SqlQueryable,
  id: string,
  usedBy: string,
  email: string,
): Promise<boolean> {
  const { rows } = await tx.query(
    `UPDATE invites SET used_at = now(), used_by = $2
      WHERE id = $1 AND ${PENDING} AND (email IS NULL OR email = $3) RETURNING id`,
    [id, usedBy, email],
  );
  return rows.length === 1;
}
