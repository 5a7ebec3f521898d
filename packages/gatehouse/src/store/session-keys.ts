/**
 * Session key names and the stored value's layout, shared by RedisStore and the tests.
 * Every key of one user carries the user's pseudonym as its hash tag, so the scripts that
 * touch a session and its user's index run on Redis Cluster.
 */
import type { KeySpace } from './keys.js';
import type { SessionRef, StoredSession } from './store.js';

export interface SessionKeys {
  readonly session: string;
  readonly index: string;
  readonly deadlines: string;
  readonly ended: string;
}

export function userKeys(keys: KeySpace, uid: string): Omit<SessionKeys, 'session'> {
  return {
    index: keys.tagged('sess', uid, 'i'),
    deadlines: keys.tagged('sess', uid, 'd'),
    ended: keys.tagged('sess', uid, 'e'),
  };
}

export function sessionKey(keys: KeySpace, ref: SessionRef): string {
  return keys.tagged('sess', ref.uid, 's', ref.tokenHash);
}

export function sessionKeys(keys: KeySpace, ref: SessionRef): SessionKeys {
  return { session: sessionKey(keys, ref), ...userKeys(keys, ref.uid) };
}

/** Bytes of the header in front of the sealed payload: five big-endian doubles. */
export const SESSION_HEADER_BYTES = 40;

/** Reads a stored value: createdAt, lastSeenAt, idleTimeoutMs, absoluteExpiresAt, requestCount, payload. */
export function decodeSessionValue(tokenHash: string, value: Buffer): StoredSession {
  if (value.length < SESSION_HEADER_BYTES) throw new RangeError('session value shorter than its header');
  return {
    tokenHash,
    createdAtMs: value.readDoubleBE(0),
    lastSeenAtMs: value.readDoubleBE(8),
    idleTimeoutMs: value.readDoubleBE(16),
    absoluteExpiresAtMs: value.readDoubleBE(24),
    requestCount: value.readDoubleBE(32),
    payload: value.subarray(SESSION_HEADER_BYTES),
  };
}

/** The stored value of a session: the header, then the sealed payload. */
export function encodeSessionValue(session: StoredSession): Buffer {
  const header = Buffer.alloc(SESSION_HEADER_BYTES);
  header.writeDoubleBE(session.createdAtMs, 0);
  header.writeDoubleBE(session.lastSeenAtMs, 8);
  header.writeDoubleBE(session.idleTimeoutMs, 16);
  header.writeDoubleBE(session.absoluteExpiresAtMs, 24);
  header.writeDoubleBE(session.requestCount, 32);
  return Buffer.concat([header, session.payload]);
}
