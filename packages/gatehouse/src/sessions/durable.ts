/**
 * Durable mode: every session also kept in SQL (SessionRepository,
 * packages/gatehouse/src/sessions/repository.ts). Redis stays the cache in front: a miss refills
 * from SQL (never an ended session); while Redis is down, validation and listing read SQL; and
 * the first store call after an outage replays the revocations SQL recorded meanwhile, so nothing
 * served after an outage can be a session that was revoked during it.
 */
import type {
  SessionEndReason,
  SessionLimits,
  SessionRef,
  SessionStore,
  StoredSession,
} from '../store/session-store.js';
import type { EndedSessionEvents } from './ended-events.js';
import { presentSession, type Payload } from './payload.js';
import type { DurableSession, SessionRepository } from './repository.js';
import { handleOf } from './token.js';
import type { SessionValidationResult } from './types.js';

/** Revocations replayed after an outage reach back this far before it began (clock skew). */
const RECONCILE_MARGIN_MS = 60_000;

export interface DurableSessionsOptions {
  readonly store: SessionStore;
  readonly repository: SessionRepository;
  readonly limits: SessionLimits;
  readonly touchIntervalMs: number;
  readonly events: EndedSessionEvents;
  /** Opens a stored payload as Sessions does (remembering the last one opened per session). */
  readonly openStoredPayload: (ref: SessionRef, stored: StoredSession) => Payload | null;
  /** Runs a store call as Sessions runs every store call (outage tracking included). */
  readonly storeCall: <T>(call: () => Promise<T>) => Promise<T>;
}

/** Why a SQL row is no session (ended, or past a deadline), or null when it is live. */
function sqlRowGone(row: DurableSession | null): { reason: SessionEndReason | null } | null {
  if (!row) return null;
  if (row.endedAtMs !== null) return { reason: row.endReason };
  const now = Date.now();
  if (now >= row.absoluteExpiresAtMs) return { reason: 'expired-absolute' };
  if (now >= row.lastSeenAtMs + row.idleTimeoutMs) return { reason: 'expired-idle' };
  return null;
}

export class DurableSessions {
  readonly repository: SessionRepository;
  /** When this instance first saw the store fail in the current outage. */
  private outageSinceMs: number | null = null;
  private reconciling: Promise<void> | undefined;

  constructor(private readonly options: DurableSessionsOptions) {
    this.repository = options.repository;
  }

  /** Notes that a store call failed for want of the store: an outage, if none was noted yet. */
  storeFailed(): void {
    this.outageSinceMs ??= Date.now();
  }

  /**
   * Runs a store call: at once, or, when this instance saw the store fail, after replaying the
   * revocations SQL recorded since shortly before the outage began.
   */
  afterOutage<T>(run: () => Promise<T>): Promise<T> {
    if (this.outageSinceMs === null) return run();
    this.reconciling ??= this.reconcile(this.outageSinceMs - RECONCILE_MARGIN_MS)
      .then(() => {
        this.outageSinceMs = null;
      })
      .finally(() => {
        this.reconciling = undefined;
      });
    return this.reconciling.then(run);
  }

  /** Replays revocations SQL recorded since `sinceMs` into the store (see Sessions.reconcile). */
  async reconcile(sinceMs: number): Promise<number> {
    const { store, limits, events } = this.options;
    let ended = 0;
    for (const row of await this.repository.endedSince(sinceMs)) {
      const ref = { uid: row.uid, tokenHash: row.tokenHash };
      const result = await store.revokeSession(ref, row.endReason ?? 'revoked', limits.reasonTtlMs);
      if (result.ended) {
        ended++;
        await events.announce([handleOf(ref)], row.endReason ?? 'revoked');
      }
    }
    return ended;
  }

  /** Validation while the store is down: the SQL row decides, tombstones included. */
  async validateFromSql(ref: SessionRef): Promise<SessionValidationResult> {
    const live = await this.liveFromSql(ref);
    if ('refused' in live) return live.refused;
    const { row, payload } = live;
    const now = Date.now();
    let current: StoredSession = row;
    if (now - row.lastSeenAtMs >= this.options.touchIntervalMs) {
      await this.repository.touch(ref.uid, ref.tokenHash, now, 1);
      current = { ...row, lastSeenAtMs: now, requestCount: row.requestCount + 1 };
    }
    return { session: presentSession(ref, current, payload), reason: null };
  }

  /** A store miss: refill the store from SQL unless the session ended or expired. */
  async refillFromSql(ref: SessionRef): Promise<SessionValidationResult> {
    const { store, limits, storeCall } = this.options;
    const live = await this.liveFromSql(ref);
    if ('refused' in live) return live.refused;
    const restored = await storeCall(() => store.restoreSession(ref, live.row, limits));
    if (!restored) return { session: null, reason: null };
    return { session: presentSession(ref, live.row, live.payload), reason: null };
  }

  /** A user's live sessions from SQL (while the store is down), oldest first. */
  async listLive(uid: string): Promise<DurableSession[]> {
    return (await this.repository.listLive(uid)).filter((row) => sqlRowGone(row) === null);
  }

  /** The SQL row of a live session and its payload, or the answer saying why there is none. */
  private async liveFromSql(
    ref: SessionRef,
  ): Promise<{ row: DurableSession; payload: Payload } | { refused: SessionValidationResult }> {
    const row = await this.repository.find(ref.uid, ref.tokenHash);
    const gone = sqlRowGone(row);
    if (gone || !row) return { refused: { session: null, reason: gone ? gone.reason : null } };
    const payload = this.options.openStoredPayload(ref, row);
    if (!payload) return { refused: { session: null, reason: null } };
    return { row, payload };
  }
}
