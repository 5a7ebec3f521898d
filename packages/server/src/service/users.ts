/** Users and organizations in SQL. */
import type { SqlQueryable } from 'gatehouse';

export interface User {
  readonly id: string;
  readonly email: string;
  readonly passwordHash: string;
  readonly organizationId: string;
  readonly roles: readonly string[];
}

interface UserRow {
  id: string;
  email: string;
  password_hash: string;
  organization_id: string;
  roles: string[];
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

function toUser(row: UserRow): User {
  return {
    id: row.id,
    email: row.email,
    passwordHash: row.password_hash,
    organizationId: row.organization_id,
    roles: row.roles,
  };
}

const COLUMNS = 'id, email, password_hash, organization_id, roles';

export async function findUserByEmail(db: SqlQueryable, email: string): Promise<User | null> {
  const { rows } = await db.query(`SELECT ${COLUMNS} FROM users WHERE email = $1`, [email]);
  const row = rows[0] as UserRow | undefined;
  return row ? toUser(row) : null;
}

export async function findUserById(db: SqlQueryable, id: string): Promise<User | null> {
  const { rows } = await db.query(`SELECT ${COLUMNS} FROM users WHERE id = $1`, [id]);
  const row = rows[0] as UserRow | undefined;
  return row ? toUser(row) : null;
}

/** A user as the API shows one (docs/http-api.md): no password hash. */
export type PresentedUser = ReturnType<typeof presentUser>;

/**
 * Users by id, kept in this instance for the routes that only show the user (`GET /me`), so an
 * authenticated read costs no SQL round trip. The service never updates or deletes a user, so a
 * row once read stays right; `ttlMs` bounds how long a change made outside the service (an
 * operator deleting a user in SQL) takes to show. Password hashes are not kept.
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

export async function organizationExists(db: SqlQueryable, id: string): Promise<boolean> {
  const { rows } = await db.query('SELECT 1 FROM organizations WHERE id = $1', [id]);
  return rows.length === 1;
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
