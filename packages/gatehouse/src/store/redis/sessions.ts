/** The sessions' store operations on Redis (the contract: ../session-store.ts), one script each. */
import {
  decodeSessionValue,
  encodeSessionValue,
  sessionKey,
  sessionKeys,
  userKeys,
} from '../session-keys.js';
import {
  SESSION_END_REASONS,
  type SessionEndReason,
  type SessionLimits,
  type SessionOperations,
  type SessionRef,
  type SessionValidateOptions,
  type SessionValidation,
  type StoredSession,
} from '../session-store.js';
import type { RedisConnection } from './connection.js';
import { asBuffer, asStrings, unexpectedReply } from './errors.js';
import * as lua from './scripts.generated.js';

function asReason(value: unknown): SessionEndReason | null {
  const text = Buffer.isBuffer(value) ? value.toString() : String(value);
  return SESSION_END_REASONS.find((reason) => reason === text) ?? null;
}

export class RedisSessionOperations implements SessionOperations {
  constructor(private readonly connection: RedisConnection) {}

  async createSession(
    ref: SessionRef,
    payload: Buffer,
    limits: SessionLimits,
  ): Promise<{ session: StoredSession; evicted: string[] }> {
    const keys = sessionKeys(this.connection.keys, ref);
    const reply = await this.connection.runScript(
      lua.createSession,
      [keys.session, keys.index, keys.deadlines, keys.ended],
      [
        ref.tokenHash,
        payload,
        String(limits.idleTimeoutMs),
        String(limits.absoluteTimeoutMs),
        String(limits.maxPerUser),
        String(limits.reasonTtlMs),
      ],
      true,
    );
    if (!Array.isArray(reply) || reply.length === 0) throw unexpectedReply(lua.createSession, reply);
    const [value, ...evicted] = reply as unknown[];
    return {
      session: decodeSessionValue(ref.tokenHash, asBuffer(lua.createSession, value)),
      evicted: asStrings(lua.createSession, evicted),
    };
  }

  async validateSession(ref: SessionRef, options: SessionValidateOptions): Promise<SessionValidation> {
    const keys = sessionKeys(this.connection.keys, ref);
    const reply = await this.connection.runScript(
      lua.validateSession,
      [keys.session, keys.index, keys.deadlines, keys.ended],
      [
        ref.tokenHash,
        String(options.touchIntervalMs),
        String(options.pendingCount),
        String(options.reasonTtlMs),
        String(options.absoluteTimeoutMs),
      ],
      true,
    );
    if (!Array.isArray(reply)) throw unexpectedReply(lua.validateSession, reply);
    const [live, value, touchedOrExpiredNow, nowMsOrExpired] = reply as unknown[];
    if (live !== 1) {
      const reason = asReason(value);
      if (touchedOrExpiredNow !== 1) return { session: null, reason };
      return Buffer.isBuffer(nowMsOrExpired)
        ? {
            session: null,
            reason,
            expiredNow: true,
            expired: decodeSessionValue(ref.tokenHash, nowMsOrExpired),
          }
        : { session: null, reason, expiredNow: true };
    }
    return {
      session: decodeSessionValue(ref.tokenHash, asBuffer(lua.validateSession, value)),
      touched: touchedOrExpiredNow === 1,
      nowMs: Number(nowMsOrExpired),
    };
  }

  async touchSession(ref: SessionRef, addCount: number, lastSeenAtMs: number): Promise<boolean> {
    const keys = sessionKeys(this.connection.keys, ref);
    const reply = await this.connection.runScript(
      lua.touchSession,
      [keys.session, keys.index, keys.deadlines],
      [ref.tokenHash, String(addCount), String(lastSeenAtMs)],
    );
    return reply === 1;
  }

  async revokeSession(
    ref: SessionRef,
    reason: SessionEndReason,
    reasonTtlMs: number,
  ): Promise<{ ended: boolean; session: StoredSession | null }> {
    const keys = sessionKeys(this.connection.keys, ref);
    const reply = await this.connection.runScript(
      lua.revokeSession,
      [keys.session, keys.index, keys.deadlines, keys.ended],
      [ref.tokenHash, reason, String(reasonTtlMs)],
      true,
    );
    if (!Array.isArray(reply)) throw unexpectedReply(lua.revokeSession, reply);
    const [ended, value] = reply as unknown[];
    return {
      ended: ended === 1,
      session: Buffer.isBuffer(value) ? decodeSessionValue(ref.tokenHash, value) : null,
    };
  }

  async revokeUserSessions(
    uid: string,
    exceptTokenHash: string | null,
    reason: SessionEndReason,
    reasonTtlMs: number,
  ): Promise<string[]> {
    const keys = userKeys(this.connection.keys, uid);
    const reply = await this.connection.runScript(
      lua.revokeUserSessions,
      [keys.index, keys.deadlines, keys.ended],
      [exceptTokenHash ?? '', reason, String(reasonTtlMs)],
    );
    return asStrings(lua.revokeUserSessions, reply);
  }

  async discardSessions(uid: string, tokenHashes: readonly string[]): Promise<void> {
    if (tokenHashes.length === 0) return;
    const names = tokenHashes.map((tokenHash) => sessionKey(this.connection.keys, { uid, tokenHash }));
    // One user's keys share a hash tag: one DEL, even on Cluster.
    await this.connection.del(names);
  }

  async listSessions(uid: string, limits: SessionLimits): Promise<StoredSession[]> {
    const keys = userKeys(this.connection.keys, uid);
    const reply = await this.connection.runScript(
      lua.listSessions,
      [keys.index, keys.deadlines, keys.ended],
      [String(limits.absoluteTimeoutMs), String(limits.reasonTtlMs)],
    );
    const tokenHashes = asStrings(lua.listSessions, reply);
    if (tokenHashes.length === 0) return [];
    const sessionKeyNames = tokenHashes.map((tokenHash) =>
      sessionKey(this.connection.keys, { uid, tokenHash }),
    );
    // All of one user's keys share a hash tag, so one MGET reads them even on Cluster.
    const values = await this.connection.mGetBinary(sessionKeyNames);
    const sessions: StoredSession[] = [];
    values.forEach((value, index) => {
      const tokenHash = tokenHashes[index];
      if (Buffer.isBuffer(value) && tokenHash !== undefined)
        sessions.push(decodeSessionValue(tokenHash, value));
    });
    return sessions;
  }

  async restoreSession(ref: SessionRef, session: StoredSession, limits: SessionLimits): Promise<boolean> {
    const keys = sessionKeys(this.connection.keys, ref);
    const reply = await this.connection.runScript(
      lua.restoreSession,
      [keys.session, keys.index, keys.deadlines, keys.ended],
      [ref.tokenHash, encodeSessionValue(session), String(limits.absoluteTimeoutMs + limits.reasonTtlMs)],
    );
    return reply === 1;
  }

  async rotateSession(
    ref: SessionRef,
    newTokenHash: string,
    payload: Buffer,
    reasonTtlMs: number,
  ): Promise<StoredSession | null> {
    const keys = sessionKeys(this.connection.keys, ref);
    const newKey = sessionKey(this.connection.keys, { uid: ref.uid, tokenHash: newTokenHash });
    const reply = await this.connection.runScript(
      lua.rotateSession,
      [keys.session, newKey, keys.index, keys.deadlines, keys.ended],
      [ref.tokenHash, newTokenHash, payload, String(reasonTtlMs)],
      true,
    );
    if (!Array.isArray(reply)) throw unexpectedReply(lua.rotateSession, reply);
    const [rotated, value] = reply as unknown[];
    return rotated === 1 ? decodeSessionValue(newTokenHash, asBuffer(lua.rotateSession, value)) : null;
  }
}
