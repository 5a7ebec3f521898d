/**
 * The reference service's database: PostgreSQL through `pg` when `DATABASE_URL` is set, the
 * embedded PGlite (PostgreSQL compiled to WebAssembly, one process) in `DATA_DIR` otherwise. Both
 * run the same SQL. PHI (form answers) lives here and nowhere else.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';

import { SESSION_TABLE_SQL, type SqlQueryable } from 'gatehouse';

export interface Database extends SqlQueryable {
  readonly kind: 'postgres' | 'pglite';
  /** Runs `fn` in one transaction on one connection; rolled back when it throws. */
  transaction<T>(fn: (tx: SqlQueryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** Opens PostgreSQL at `url`, or PGlite under `dataDir` when `url` is undefined. */
export async function openDatabase(url: string | undefined, dataDir: string): Promise<Database> {
  if (url !== undefined) return openPostgres(url);
  const dir = join(dataDir, 'pglite');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const db = await PGlite.create(dir);
  return {
    kind: 'pglite',
    query: async (text, params) => db.query(text, params),
    transaction: (fn) => db.transaction((tx) => fn({ query: (text, params) => tx.query(text, params) })),
    close: () => db.close(),
  };
}

/** PGlite in memory: for tests. */
export async function openMemoryDatabase(): Promise<Database> {
  const db = await PGlite.create();
  return {
    kind: 'pglite',
    query: async (text, params) => db.query(text, params),
    transaction: (fn) => db.transaction((tx) => fn({ query: (text, params) => tx.query(text, params) })),
    close: () => db.close(),
  };
}

function openPostgres(url: string): Database {
  // bigint columns come back as strings; every caller converts with Number() where it needs to.
  const pool = new pg.Pool({ connectionString: url, max: 10, connectionTimeoutMillis: 5000 });
  pool.on('error', () => {
    // An idle client lost its connection; the pool replaces it. Queries report their own errors.
  });
  return {
    kind: 'postgres',
    query: (text, params) => pool.query(text, params),
    transaction: async (fn) => {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const result = await fn({ query: (text, params) => client.query(text, params) });
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      } finally {
        client.release();
      }
    },
    close: () => pool.end(),
  };
}

/**
 * The schema, one migration per entry, applied in order and recorded in `schema_migrations`.
 * Never edit an applied entry: add a new one.
 */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE organizations (
    id text PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
  );
  CREATE TABLE users (
    id text PRIMARY KEY,
    email text NOT NULL UNIQUE,
    password_hash text NOT NULL,
    organization_id text NOT NULL REFERENCES organizations (id),
    roles text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
  );
  CREATE TABLE forms (
    id text PRIMARY KEY,
    organization_id text NOT NULL REFERENCES organizations (id),
    created_by text NOT NULL REFERENCES users (id),
    title text NOT NULL,
    fields jsonb NOT NULL,
    fence bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
  );
  CREATE INDEX forms_organization ON forms (organization_id);
  CREATE TABLE form_responses (
    id text PRIMARY KEY,
    form_id text NOT NULL REFERENCES forms (id),
    organization_id text NOT NULL REFERENCES organizations (id),
    answers jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
  );
  CREATE INDEX form_responses_form ON form_responses (form_id);
  CREATE TABLE audit_log (
    id bigint PRIMARY KEY,
    at_ms bigint NOT NULL,
    type text NOT NULL,
    outcome text NOT NULL,
    user_id text,
    session_hash text,
    request_id text,
    details jsonb NOT NULL DEFAULT '{}',
    prev_hash text NOT NULL,
    hash text NOT NULL
  );
  CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
  END;
  $$;
  CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
  CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
  `,
  SESSION_TABLE_SQL,
  // Organizations with owners (docs/http-api.md, "Organizations"): the first user of each
  // organization is the one who created it, and becomes its owner. `admin` given by the former
  // ADMIN_EMAILS goes: whoever signed up first with a listed email got it, so it is granted again
  // by command only (docs/configuration.md, "Roles"). A removed member keeps the row (forms and
  // audit rows name it) with `removed_at` set. Invite codes move from Redis to SQL, as hashes.
  `
  ALTER TABLE users ADD COLUMN removed_at timestamptz;
  UPDATE users SET roles = array_remove(roles, 'admin');
  UPDATE users SET roles = array_prepend('owner', roles)
    WHERE id IN (SELECT DISTINCT ON (organization_id) id FROM users ORDER BY organization_id, created_at, id);
  CREATE INDEX users_organization ON users (organization_id, created_at) WHERE removed_at IS NULL;
  CREATE TABLE invites (
    id text PRIMARY KEY,
    organization_id text NOT NULL REFERENCES organizations (id),
    code_hash text NOT NULL UNIQUE,
    email text,
    created_by text NOT NULL REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz,
    used_by text REFERENCES users (id),
    revoked_at timestamptz
  );
  CREATE INDEX invites_pending ON invites (organization_id, created_at) WHERE used_at IS NULL AND revoked_at IS NULL;
  `,
  // The keyed audit chain (packages/server/src/service/audit-chain.ts): each row names the key of
  // its hash. Rows of the unkeyed chain keep a NULL key id (and fail verification); the check,
  // NOT VALID so it leaves them be, makes the database refuse any new row without one.
  `
  ALTER TABLE audit_log ADD COLUMN key_id text;
  ALTER TABLE audit_log ADD CONSTRAINT audit_log_keyed CHECK (key_id IS NOT NULL) NOT VALID;
  `,
];

/** Applies the migrations not yet applied; safe when several instances start at once. */
export async function migrate(db: Database): Promise<number> {
  return db.transaction(async (tx) => {
    // One instance migrates at a time; the others wait here, then find nothing left to do. The
    // lock comes first: two CREATE TABLE IF NOT EXISTS at once can both try to create the table
    // (PostgreSQL then refuses one with a duplicate key in pg_type).
    if (db.kind === 'postgres') await tx.query('SELECT pg_advisory_xact_lock(7461001)');
    await tx.query(
      'CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())',
    );
    const { rows } = await tx.query('SELECT version FROM schema_migrations');
    const applied = new Set((rows as Array<{ version: number }>).map((row) => row.version));
    let count = 0;
    for (const [index, sql] of MIGRATIONS.entries()) {
      const version = index + 1;
      if (applied.has(version)) continue;
      await execMulti(tx, sql);
      await tx.query('INSERT INTO schema_migrations (version) VALUES ($1)', [version]);
      count += 1;
    }
    return count;
  });
}

/** Runs statements separated by `;` at line ends (dollar-quoted bodies keep their inner `;`). */
async function execMulti(tx: SqlQueryable, sql: string): Promise<void> {
  const statements: string[] = [];
  let current = '';
  let inDollar = false;
  for (const line of sql.split('\n')) {
    if ((line.match(/\$\$/g) ?? []).length % 2 === 1) inDollar = !inDollar;
    current += `${line}\n`;
    if (!inDollar && line.trimEnd().endsWith(';')) {
      statements.push(current.trim());
      current = '';
    }
  }
  if (current.trim() !== '') statements.push(current.trim());
  for (const statement of statements) await tx.query(statement);
}
