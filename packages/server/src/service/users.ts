/**
 * Users and organizations in SQL. A member the owner removed keeps their row (forms and audit
 * rows name them, and the email stays taken) with `removed_at` set: every read of a user for
 * what they may do (sign-in, `GET /me`, the members list, role changes) leaves them out or
 * refuses them.
 */
import type { SqlQueryable } from 'gatehouse';

export interface User {
  readonly id: string;
  readonly email: string;
  readonly passwordHash: string;
  readonly organizationId: string;
  readonly roles: readonly string[];
}

/** A user as stored, removed ones too (sign-up must see the email taken, sign-in refuse them alike). */
export interface StoredUser extends User {
  /** True once the owner removed them from their organization: they can no longer sign in. */
  readonly removed: boolean;
}

/** The roles an organization gives: its creator owns it; everyone in it is a member. */
export const OWNER_ROLES: readonly string[] = ['owner', 'member'];
export const MEMBER_ROLES: readonly string[] = ['member'];
const ORGANIZATION_ROLES = new Set(OWNER_ROLES);

interface UserRow {
  id: string;
  email: string;
  password_hash: string;
  organization_id: string;
  roles: string[];
  removed: boolean;
}

const MAX_EMAIL_LENGTH = 254;
// Deliberately plain: one @, no spaces or control characters, a dot in the domain.
const EMAIL = /^[^\s@\p{Cc}]{1,64}@[^\s@\p{Cc}]+\.[^\s@\p{Cc}]{2,}$/u;

/** The stored form of an email (trimmed, NFKC, lower case), or null when it is not one. */
export function normalizeEmail(input: string): string | null {
  const email = input.normalize('NFKC').trim().toLowerCase();
  if (email.length > MAX_EMAIL_LENGTH || !EMAIL.test(email)) return null;
  return email;
}

function toUser(row: UserRow): StoredUser {
  return {
    id: row.id,
    email: row.email,
    passwordHash: row.password_hash,
    organizationId: row.organization_id,
    roles: row.roles,
    removed: row.removed,
  };
}

const COLUMNS = 'id, email, password_hash, organization_id, roles';
const SELECTED = `${COLUMNS}, removed_at IS NOT NULL AS removed`;

/** The user with this (normalised) email, removed ones included: see {@link StoredUser}. */
export async function findUserByEmail(db: SqlQueryable, email: string): Promise<StoredUser | null> {
  const { rows } = await db.query(`SELECT ${SELECTED} FROM users WHERE email = $1`, [email]);
  const row = rows[0] as UserRow | undefined;
  return row ? toUser(row) : null;
}

/** The user with this id, unless removed. */
export async function findUserById(db: SqlQueryable, id: string): Promise<StoredUser | null> {
  const { rows } = await db.query(`SELECT ${SELECTED} FROM users WHERE id = $1 AND removed_at IS NULL`, [id]);
  const row = rows[0] as UserRow | undefined;
  return row ? toUser(row) : null;
}

/** Same organization and same roles, in the same order: what a session made from `a` carries. */
export function sameAccess(a: User, b: User): boolean {
  return (
    a.organizationId === b.organizationId &&
    a.roles.length === b.roles.length &&
    a.roles.every((role, i) => b.roles[i] === role)
  );
}

/** A user as the API shows one (docs/http-api.md): no password hash. */
export type PresentedUser = ReturnType<typeof presentUser>;

/**
 * Users by id, kept in this instance for the routes that only show the user (`GET /me`), so an
 * authenticated read costs no SQL round trip. Only what never changes is taken from here (id and
 * email): roles and the organization come from the session, which a role change or a removal
 * ends (packages/server/src/service/end-user-sessions.ts), so they can never be stale. `ttlMs`
 * bounds how long a change made outside the service (an operator deleting a user in SQL) takes
 * to show. Password hashes are not kept.
 */
export class UserCache {
  private readonly entries = new Map<string, { user: PresentedUser; expiresAtMs: number }>();

  constructor(
    private readonly db: SqlQueryable,
    private readonly options: { ttlMs: number; maxEntries: number } = { ttlMs: 30_000, maxEntries: 10_000 },
  ) {}

  async find(id: string): Promise<PresentedUser | null> {
    const now = Date.now();
    const cached = this.entries.get(id);
    if (cached && cached.expiresAtMs > now) return cached.user;
    const user = await findUserById(this.db, id);
    this.entries.delete(id);
    if (!user) return null;
    const presented = presentUser(user);
    // Oldest first out: a Map keeps insertion order.
    if (this.entries.size >= this.options.maxEntries) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(id, { user: presented, expiresAtMs: now + this.options.ttlMs });
    return presented;
  }
}

/** Inserts the user; false when the email is taken (also when another instance won the race). */
export async function insertUser(db: SqlQueryable, user: User): Promise<boolean> {
  const { rows } = await db.query(
    `INSERT INTO users (${COLUMNS}) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (email) DO NOTHING RETURNING id`,
    [user.id, user.email, user.passwordHash, user.organizationId, [...user.roles]],
  );
  return rows.length === 1;
}

export async function insertOrganization(db: SqlQueryable, id: string): Promise<void> {
  await db.query('INSERT INTO organizations (id) VALUES ($1) ON CONFLICT DO NOTHING', [id]);
}

/** A member of an organization as the members list shows one (docs/http-api.md, "Organizations"). */
export interface Member {
  readonly id: string;
  readonly email: string;
  /** The organization roles only (`owner`, `member`): the service-wide `admin` is nobody's business here. */
  readonly roles: readonly string[];
  readonly joinedAt: string;
}

/** The organization's members (removed ones left out), in the order they joined. */
export async function listMembers(db: SqlQueryable, organizationId: string): Promise<Member[]> {
  const { rows } = await db.query(
    `SELECT id, email, roles, created_at FROM users
      WHERE organization_id = $1 AND removed_at IS NULL ORDER BY created_at, id`,
    [organizationId],
  );
  return (rows as { id: string; email: string; roles: string[]; created_at: Date | string }[]).map((row) => ({
    id: row.id,
    email: row.email,
    roles: row.roles.filter((role) => ORGANIZATION_ROLES.has(role)),
    joinedAt: new Date(row.created_at).toISOString(),
  }));
}

/** Whether `userId` is in the organization: a member, its owner, or a member removed already. */
export async function membershipOf(
  db: SqlQueryable,
  organizationId: string,
  userId: string,
): Promise<'member' | 'owner' | 'removed' | null> {
  const { rows } = await db.query(
    `SELECT 'owner' = ANY (roles) AS owner, removed_at IS NOT NULL AS removed FROM users
      WHERE id = $1 AND organization_id = $2`,
    [userId, organizationId],
  );
  const row = rows[0] as { owner: boolean; removed: boolean } | undefined;
  if (!row) return null;
  return row.removed ? 'removed' : row.owner ? 'owner' : 'member';
}

/** Marks the member removed; false when they were not an active member of the organization. */
export async function markRemoved(
  db: SqlQueryable,
  organizationId: string,
  userId: string,
): Promise<boolean> {
  const { rows } = await db.query(
    `UPDATE users SET removed_at = now()
      WHERE id = $1 AND organization_id = $2 AND removed_at IS NULL AND NOT ('owner' = ANY (roles))
      RETURNING id`,
    [userId, organizationId],
  );
  return rows.length === 1;
}

/**
 * Adds `role` to the user's roles (at the end); the roles after, or null when the user is removed
 * or holds it already.
 */
export async function addRole(db: SqlQueryable, userId: string, role: string): Promise<string[] | null> {
  const { rows } = await db.query(
    `UPDATE users SET roles = array_append(roles, $2)
      WHERE id = $1 AND removed_at IS NULL AND NOT ($2 = ANY (roles)) RETURNING roles`,
    [userId, role],
  );
  return (rows[0] as { roles: string[] } | undefined)?.roles ?? null;
}

/** Takes `role` from the user's roles; the roles after, or null when the user did not hold it. */
export async function removeRole(db: SqlQueryable, userId: string, role: string): Promise<string[] | null> {
  const { rows } = await db.query(
    'UPDATE users SET roles = array_remove(roles, $2) WHERE id = $1 AND $2 = ANY (roles) RETURNING roles',
    [userId, role],
  );
  return (rows[0] as { roles: string[] } | undefined)?.roles ?? null;
}

/** `{id, email, organizationId, roles}`, as the API shows a user (docs/http-api.md). */
export function presentUser(user: User): {
  id: string;
  email: string;
  organizationId: string;
  roles: string[];
} {
  return { id: user.id, email: user.email, organizationId: user.organizationId, roles: [...user.roles] };
}
