/**
 * What durable mode needs from SQL: a copy of every session, so sessions survive a Redis that lost
 * its data and still validate while Redis is down. Redis stays the cache in front (cache-aside);
 * ended sessions keep their row with the time and reason they ended (a tombstone), so a revoked
 * session never comes back from SQL. The SQL implementation is SqlSessionRepository
 * (packages/gatehouse/src/sessions/sql-repository.ts).
 */
import type { SessionEndReason, StoredSession } from '../store/session-store.js';

/** A session as SQL keeps it: the stored session, its user pseudonym, and whether it ended. */
export interface DurableSession extends StoredSession {
  readonly uid: string;
  readonly endedAtMs: number | null;
  readonly endReason: SessionEndReason | null;
}

export interface SessionRepository {
  /** Adds a session (nothing when its row exists already). */
  insert(uid: string, session: StoredSession): Promise<void>;
  /** The row of a session, ended or not; null when there is none. */
  find(uid: string, tokenHash: string): Promise<DurableSession | null>;
  /** Live (not ended) rows of a user, oldest first. */
  listLive(uid: string): Promise<DurableSession[]>;
  /** Marks sessions ended (tombstones); returns the token hashes that were live. */
  end(
    uid: string,
    tokenHashes: readonly string[],
    reason: SessionEndReason,
    endedAtMs: number,
  ): Promise<string[]>;
  /** Ends every live session of a user but `exceptTokenHash`; returns the token hashes ended. */
  endAll(
    uid: string,
    exceptTokenHash: string | null,
    reason: SessionEndReason,
    endedAtMs: number,
  ): Promise<string[]>;
  /** Records activity (never moves last seen backwards). */
  touch(uid: string, tokenHash: string, lastSeenAtMs: number, addCount: number): Promise<void>;
  /** Sessions ended at or after `sinceMs` (to replay revocations Redis missed during an outage). */
  endedSince(sinceMs: number): Promise<DurableSession[]>;
}
