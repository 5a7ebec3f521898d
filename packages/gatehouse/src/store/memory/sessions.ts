/** The sessions' store operations in memory (the contract: ../session-store.ts), as the Lua scripts do them. */
import {
  decodeSessionValue,
  encodeSessionValue,
  sessionKey,
  sessionKeys,
  userKeys,
  type SessionKeys,
} from '../session-keys.js';
import type {
  SessionEndReason,
  SessionLimits,
  SessionOperations,
  SessionRef,
  SessionValidateOptions,
  SessionValidation,
  StoredSession,
} from '../session-store.js';
import type { MemoryState } from './state.js';

export class MemorySessionOperations implements SessionOperations {
  constructor(private readonly state: MemoryState) {}

  createSession(
    ref: SessionRef,
    payload: Buffer,
    limits: SessionLimits,
  ): Promise<{ session: StoredSession; evicted: string[] }> {
    return this.state.operation(() => {
      const now = this.state.now();
      const keys = sessionKeys(this.state.keys, ref);
      if (this.state.hash(keys.ended).size > 2 * limits.maxPerUser + 64) this.state.delete(keys.ended);
      this.forgetExpired(keys, now, limits.absoluteTimeoutMs);
      const index = this.state.zset(keys.index);
      const deadlines = this.state.zset(keys.deadlines);
      const excess = index.size - limits.maxPerUser + 1;
      const evicted = excess > 0 ? sortedByScore(index).slice(0, excess) : [];
      for (const member of evicted) {
        index.delete(member);
        deadlines.delete(member);
        this.state.hash(keys.ended).set(member, 'evicted-limit');
      }
      if (this.state.get(keys.ended) !== undefined) this.state.extendTtl(keys.ended, limits.reasonTtlMs);
      const newest = sortedByScore(index).at(-1);
      const order = Math.max(now * 1000, newest === undefined ? 0 : (index.get(newest) ?? 0) + 1);
      const absoluteExpiresAtMs = now + limits.absoluteTimeoutMs;
      const deadline = Math.min(now + limits.idleTimeoutMs, absoluteExpiresAtMs);
      const session: StoredSession = {
        tokenHash: ref.tokenHash,
        createdAtMs: now,
        lastSeenAtMs: now,
        idleTimeoutMs: limits.idleTimeoutMs,
        absoluteExpiresAtMs,
        requestCount: 0,
        payload,
      };
      this.state.set(keys.session, encodeSessionValue(session), deadline - now);
      index.set(ref.tokenHash, order);
      deadlines.set(ref.tokenHash, deadline);
      this.state.extendTtl(keys.index, limits.absoluteTimeoutMs + limits.reasonTtlMs);
      this.state.extendTtl(keys.deadlines, limits.absoluteTimeoutMs + limits.reasonTtlMs);
      return { session, evicted };
    });
  }

  validateSession(ref: SessionRef, options: SessionValidateOptions): Promise<SessionValidation> {
    const { touchIntervalMs, pendingCount, reasonTtlMs, absoluteTimeoutMs } = options;
    return this.state.operation((): SessionValidation => {
      const now = this.state.now();
      const keys = sessionKeys(this.state.keys, ref);
      const value = this.state.get(keys.session);
      const endedReason = () =>
        (this.state.hash(keys.ended).get(ref.tokenHash) as SessionEndReason | undefined) ?? null;
      const recordEnd = (reason: SessionEndReason) => {
        this.state.zset(keys.index).delete(ref.tokenHash);
        this.state.zset(keys.deadlines).delete(ref.tokenHash);
        this.state.hash(keys.ended).set(ref.tokenHash, reason);
        this.state.extendTtl(keys.ended, reasonTtlMs);
      };
      if (!Buffer.isBuffer(value)) {
        // Expired by TTL: the index still holds its deadline and creation time.
        const deadline = this.state.zset(keys.deadlines).get(ref.tokenHash);
        const order = this.state.zset(keys.index).get(ref.tokenHash);
        if (deadline !== undefined && order !== undefined && deadline <= now) {
          const reason = expiryReason(deadline, order, absoluteTimeoutMs);
          recordEnd(reason);
          return { session: null, reason, expiredNow: true };
        }
        return { session: null, reason: endedReason() };
      }
      if (!this.state.zset(keys.index).has(ref.tokenHash)) {
        this.state.delete(keys.session);
        return { session: null, reason: endedReason() };
      }
      let session = decodeSessionValue(ref.tokenHash, value);
      const reason: SessionEndReason | null =
        now >= session.absoluteExpiresAtMs
          ? 'expired-absolute'
          : now >= session.lastSeenAtMs + session.idleTimeoutMs
            ? 'expired-idle'
            : null;
      if (reason) {
        this.state.delete(keys.session);
        recordEnd(reason);
        return { session: null, reason, expiredNow: true, expired: session };
      }
      let touched = false;
      if (now - session.lastSeenAtMs >= touchIntervalMs) {
        const deadline = Math.min(now + session.idleTimeoutMs, session.absoluteExpiresAtMs);
        session = { ...session, lastSeenAtMs: now, requestCount: session.requestCount + pendingCount };
        this.state.set(keys.session, encodeSessionValue(session), deadline - now);
        this.state.zset(keys.deadlines).set(ref.tokenHash, deadline);
        touched = true;
      }
      return { session, touched, nowMs: now };
    });
  }

  touchSession(ref: SessionRef, addCount: number, lastSeenAtMs: number): Promise<boolean> {
    return this.state.operation(() => {
      const now = this.state.now();
      const keys = sessionKeys(this.state.keys, ref);
      const value = this.state.get(keys.session);
      if (!Buffer.isBuffer(value) || !this.state.zset(keys.index).has(ref.tokenHash)) return false;
      const session = decodeSessionValue(ref.tokenHash, value);
      const seen = Math.min(Math.max(session.lastSeenAtMs, lastSeenAtMs), now);
      const deadline = Math.min(seen + session.idleTimeoutMs, session.absoluteExpiresAtMs);
      if (deadline <= now) return false;
      const touched = { ...session, lastSeenAtMs: seen, requestCount: session.requestCount + addCount };
      this.state.set(keys.session, encodeSessionValue(touched), deadline - now);
      this.state.zset(keys.deadlines).set(ref.tokenHash, deadline);
      return true;
    });
  }

  revokeSession(
    ref: SessionRef,
    reason: SessionEndReason,
    reasonTtlMs: number,
  ): Promise<{ ended: boolean; session: StoredSession | null }> {
    return this.state.operation(() => {
      const keys = sessionKeys(this.state.keys, ref);
      const value = this.state.get(keys.session);
      this.state.delete(keys.session);
      const indexed = this.state.zset(keys.index).delete(ref.tokenHash);
      this.state.zset(keys.deadlines).delete(ref.tokenHash);
      if (indexed) {
        this.state.hash(keys.ended).set(ref.tokenHash, reason);
        this.state.extendTtl(keys.ended, reasonTtlMs);
      }
      return {
        ended: indexed,
        session: indexed && Buffer.isBuffer(value) ? decodeSessionValue(ref.tokenHash, value) : null,
      };
    });
  }

  revokeUserSessions(
    uid: string,
    exceptTokenHash: string | null,
    reason: SessionEndReason,
    reasonTtlMs: number,
  ): Promise<string[]> {
    return this.state.operation(() => {
      const keys = userKeys(this.state.keys, uid);
      const index = this.state.zset(keys.index);
      const ended = sortedByScore(index).filter((member) => member !== exceptTokenHash);
      for (const member of ended) {
        index.delete(member);
        this.state.zset(keys.deadlines).delete(member);
        this.state.hash(keys.ended).set(member, reason);
      }
      if (ended.length > 0) this.state.extendTtl(keys.ended, reasonTtlMs);
      return ended;
    });
  }

  discardSessions(uid: string, tokenHashes: readonly string[]): Promise<void> {
    return this.state.operation(() => {
      for (const tokenHash of tokenHashes) this.state.delete(sessionKey(this.state.keys, { uid, tokenHash }));
    });
  }

  listSessions(uid: string, limits: SessionLimits): Promise<StoredSession[]> {
    return this.state.operation(() => {
      const keys = userKeys(this.state.keys, uid);
      this.forgetExpired(keys, this.state.now(), limits.absoluteTimeoutMs);
      if (this.state.get(keys.ended) !== undefined) this.state.extendTtl(keys.ended, limits.reasonTtlMs);
      return sortedByScore(this.state.zset(keys.index)).flatMap((tokenHash) => {
        const value = this.state.get(sessionKey(this.state.keys, { uid, tokenHash }));
        return Buffer.isBuffer(value) ? [decodeSessionValue(tokenHash, value)] : [];
      });
    });
  }

  restoreSession(ref: SessionRef, session: StoredSession, limits: SessionLimits): Promise<boolean> {
    return this.state.operation(() => {
      const now = this.state.now();
      const keys = sessionKeys(this.state.keys, ref);
      if (this.state.hash(keys.ended).has(ref.tokenHash)) return false;
      if (this.state.get(keys.session) !== undefined) return true;
      const deadline = Math.min(session.lastSeenAtMs + session.idleTimeoutMs, session.absoluteExpiresAtMs);
      if (deadline <= now) return false;
      this.state.set(
        keys.session,
        encodeSessionValue({ ...session, tokenHash: ref.tokenHash }),
        deadline - now,
      );
      this.state.zset(keys.index).set(ref.tokenHash, session.createdAtMs * 1000);
      this.state.zset(keys.deadlines).set(ref.tokenHash, deadline);
      this.state.extendTtl(keys.index, limits.absoluteTimeoutMs + limits.reasonTtlMs);
      this.state.extendTtl(keys.deadlines, limits.absoluteTimeoutMs + limits.reasonTtlMs);
      return true;
    });
  }

  rotateSession(
    ref: SessionRef,
    newTokenHash: string,
    payload: Buffer,
    reasonTtlMs: number,
  ): Promise<StoredSession | null> {
    return this.state.operation(() => {
      const now = this.state.now();
      const keys = sessionKeys(this.state.keys, ref);
      const value = this.state.get(keys.session);
      const createdAt = this.state.zset(keys.index).get(ref.tokenHash);
      const ttl = this.state.pttl(keys.session);
      if (!Buffer.isBuffer(value) || createdAt === undefined || ttl <= 0) return null;
      const old = decodeSessionValue(ref.tokenHash, value);
      if (now >= old.absoluteExpiresAtMs || now >= old.lastSeenAtMs + old.idleTimeoutMs) return null;
      const rotated: StoredSession = { ...old, tokenHash: newTokenHash, payload };
      this.state.set(
        sessionKey(this.state.keys, { uid: ref.uid, tokenHash: newTokenHash }),
        encodeSessionValue(rotated),
        ttl,
      );
      this.state.zset(keys.index).set(newTokenHash, createdAt);
      this.state
        .zset(keys.deadlines)
        .set(newTokenHash, this.state.zset(keys.deadlines).get(ref.tokenHash) ?? now + ttl);
      this.state.delete(keys.session);
      this.state.zset(keys.index).delete(ref.tokenHash);
      this.state.zset(keys.deadlines).delete(ref.tokenHash);
      this.state.hash(keys.ended).set(ref.tokenHash, 'rotated');
      this.state.extendTtl(keys.ended, reasonTtlMs);
      return rotated;
    });
  }

  /** Forgets sessions whose deadline passed, keeping which timeout it was. */
  private forgetExpired(keys: Omit<SessionKeys, 'session'>, now: number, absoluteTimeoutMs: number): void {
    const index = this.state.zset(keys.index);
    const deadlines = this.state.zset(keys.deadlines);
    for (const [member, deadline] of deadlines) {
      if (deadline <= now) {
        this.state
          .hash(keys.ended)
          .set(member, expiryReason(deadline, index.get(member) ?? 0, absoluteTimeoutMs));
        deadlines.delete(member);
        index.delete(member);
      }
    }
  }
}

/** Which timeout ended a session, from its last deadline and its index score (creation in µs). */
function expiryReason(deadline: number, order: number, absoluteTimeoutMs: number): SessionEndReason {
  return deadline >= Math.floor(order / 1000) + absoluteTimeoutMs ? 'expired-absolute' : 'expired-idle';
}

/** Members ordered by score, then by member, as ZRANGE orders them. */
function sortedByScore(zset: Map<string, number>): string[] {
  return [...zset]
    .sort(([a, scoreA], [b, scoreB]) => scoreA - scoreB || (a < b ? -1 : a > b ? 1 : 0))
    .map(([member]) => member);
}
