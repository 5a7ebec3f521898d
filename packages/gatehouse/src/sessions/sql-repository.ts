/**
 * The SQL session repository of durable mode (the contract is SessionRepository in
 * packages/gatehouse/src/sessions/repository.ts): one row per session; an ended session keeps its
 * row with `ended_at_ms` and `end_reason` set (a tombstone).
 *
 * The SQL is plain PostgreSQL and runs on `pg` (a `Pool` or `Client`) and on PGlite alike: both
 * have `query(text, params) -> { rows }`. Like Redis, the table holds no token and no personal
 * data in clear: the token hash, the user pseudonym and the sealed payload.
 */
import type { SessionEndReason, StoredSession } from '../store/session-store.js';
import type { DurableSession, SessionRepository } from './repository.js';

/** What both `pg` and PGlite offer. */
export interface SqlQueryable {
  query(text: string, params?: unknown[]): Promise<{ rows: unknown[] }>;
}

/** The session table; applied by `migrate()` (idempotent). */
export const SESSION_TABLE_SQL = `
CREATE TABLE IF NOT EXISTS gh_sessions (
  uid text NOT NULL,
  token_hash text NOT NULL,
  created_at_ms bigint NOT NULL,
  last_seen_at_ms bigint NOT NULL,
  idle_timeout_ms bigint NOT NULL,
  absolute_expires_at_ms bigint NOT NULL,
  request_count bigint NOT NULL DEFAULT 0,
  payload bytea NOT NULL,
  ended_at_ms bigint,
  end_reason text,
  PRIMARY KEY (uid, token_hash)
);
CREATE INDEX IF NOT EXISTS gh_sessions_ended_at ON gh_sessions (ended_at_ms) WHERE ended_at_ms IS NOT NULL;
CREATE INDEX IF NOT EXISTS gh_sessions_expires_at ON gh_sessions (absolute_expires_at_ms);
`;

interface Row {
  uid: string;
  token_hash: string;
  created_at_ms: string | number | bigint;
  last_seen_at_ms: string | number | bigint;
  idle_timeout_ms: string | number | bigint;
  absolute_expires_at_ms: string | number | bigint;
  request_count: string | number | bigint;
  payload: Uint8Array;
  ended_at_ms: string | number | bigint | null;
  end_reason: string | null;
}

function toSession(row: Row): DurableSession {
  return {
    uid: row.uid,
    tokenHash: row.token_hash,
    createdAtMs: Number(row.created_at_ms),
    lastSeenAtMs: Number(row.last_seen_at_ms),
    idleTimeoutMs: Number(row.idle_timeout_ms),
    absoluteExpiresAtMs: Number(row.absolute_expires_at_ms),
    requestCount: Number(row.request_count),
    payload: Buffer.from(row.payload),
    endedAtMs: row.ended_at_ms === null ? null : Number(row.ended_at_ms),
    endReason: row.end_reason as SessionEndReason | null,
  };
}

const COLUMNS =
  'uid, token_hash, created_at_ms, last_seen_at_ms, idle_timeout_ms, absolute_expires_at_ms, request_count, payload, ended_at_ms, end_reason';

export class SqlSessionRepository implements SessionRepository {
  constructor(private readonly db: SqlQueryable) {}

  /** Creates the table and its indexes if they are missing. */
  async migrate(): Promise<void> {
    for (const statement of SESSION_TABLE_SQL.split(';').map((text) => text.trim())) {
      if (statement !== '') await this.db.query(statement);
    }
  }

  async insert(uid: string, session: StoredSession): Promise<void> {
    await this.db.query(
      `INSERT INTO gh_sessions (${COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL)
       ON CONFLICT (uid, token_hash) DO NOTHING`,
      [
        uid,
        session.tokenHash,
        session.createdAtMs,
        session.lastSeenAtMs,
        session.idleTimeoutMs,
        session.absoluteExpiresAtMs,
        session.requestCount,
        session.payload,
      ],
    );
  }

  async find(uid: string, tokenHash: string): Promise<DurableSession | null> {
    const { rows } = await this.db.query(
      `SELECT ${COLUMNS} FROM gh_sessions WHERE uid = $1 AND token_hash = $2`,
      [uid, tokenHash],
    );
    const row = rows[0] as Row | undefined;
    return row ? toSession(row) : null;
  }

  /** Live (not ended) rows of a user, oldest first. */
  async listLive(uid: string): Promise<DurableSession[]> {
    const { rows } = await this.db.query(
      `SELECT ${COLUMNS} FROM gh_sessions WHERE uid = $1 AND ended_at_ms IS NULL ORDER BY created_at_ms`,
      [uid],
    );
    return (rows as Row[]).map(toSession);
  }

  /** Marks sessions ended (tombstones); returns the token hashes that were live. */
  async end(
    uid: string,
    tokenHashes: readonly string[],
    reason: SessionEndReason,
    endedAtMs: number,
  ): Promise<string[]> {
    if (tokenHashes.length === 0) return [];
    const { rows } = await this.db.query(
      `UPDATE gh_sessions SET ended_at_ms = $3, end_reason = $4
       WHERE uid = $1 AND token_hash = ANY($2::text[]) AND ended_at_ms IS NULL
       RETURNING token_hash`,
      [uid, [...tokenHashes], endedAtMs, reason],
    );
    return (rows as Array<{ token_hash: string }>).map((row) => row.token_hash);
  }

  /** Ends every live session of a user but `exceptTokenHash`; returns the token hashes ended. */
  async endAll(
    uid: string,
    exceptTokenHash: string | null,
    reason: SessionEndReason,
    endedAtMs: number,
  ): Promise<string[]> {
    const { rows } = await this.db.query(
      `UPDATE gh_sessions SET ended_at_ms = $3, end_reason = $4
       WHERE uid = $1 AND ended_at_ms IS NULL AND token_hash <> $2
       RETURNING token_hash`,
      [uid, exceptTokenHash ?? '', endedAtMs, reason],
    );
    return (rows as Array<{ token_hash: string }>).map((row) => row.token_hash);
  }

  /** Records activity (never moves last seen backwards). */
  async touch(uid: string, tokenHash: string, lastSeenAtMs: number, addCount: number): Promise<void> {
    await this.db.query(
      `UPDATE gh_sessions SET last_seen_at_ms = GREATEST(last_seen_at_ms, $3), request_count = request_count + $4
       WHERE uid = $1 AND token_hash = $2 AND ended_at_ms IS NULL`,
      [uid, tokenHash, lastSeenAtMs, addCount],
    );
  }

  /** Sessions ended at or after `sinceMs` (to replay revocations Redis missed during an outage). */
  async endedSince(sinceMs: number): Promise<DurableSession[]> {
    const { rows } = await this.db.query(
      `SELECT ${COLUMNS} FROM gh_sessions WHERE ended_at_ms >= $1 ORDER BY ended_at_ms`,
      [sinceMs],
    );
    return (rows as Row[]).map(toSession);
  }

  /** Deletes rows whose absolute expiry is before `beforeMs`; returns how many. */
  async purge(beforeMs: number): Promise<number> {
    const { rows } = await this.db.query(
      'DELETE FROM gh_sessions WHERE absolute_expires_at_ms < $1 RETURNING token_hash',
      [beforeMs],
    );
    return rows.length;
  }
}
