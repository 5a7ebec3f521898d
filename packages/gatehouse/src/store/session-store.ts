/**
 * The sessions' part of the store (see ./store.ts): each method one atomic step on a user's
 * session keys (./session-keys.ts), with its TTLs and reply defined here. Sessions
 * (packages/gatehouse/src/sessions/sessions.ts) depends on this part only.
 */
import type { KeySpace } from './keys.js';

/** Why a session ended, when the store knows. */
export type SessionEndReason = 'expired-idle' | 'expired-absolute' | 'revoked' | 'evicted-limit' | 'rotated';

export const SESSION_END_REASONS: readonly SessionEndReason[] = [
  'expired-idle',
  'expired-absolute',
  'revoked',
  'evicted-limit',
  'rotated',
];

/** Where a session lives: its user's pseudonym (the hash tag) and the hash of its token. */
export interface SessionRef {
  readonly uid: string;
  readonly tokenHash: string;
}

/** A session as stored: timestamps on the store's clock, the payload still sealed. */
export interface StoredSession {
  readonly tokenHash: string;
  readonly createdAtMs: number;
  readonly lastSeenAtMs: number;
  readonly idleTimeoutMs: number;
  readonly absoluteExpiresAtMs: number;
  readonly requestCount: number;
  readonly payload: Buffer;
}

export interface SessionLimits {
  readonly idleTimeoutMs: number;
  readonly absoluteTimeoutMs: number;
  readonly maxPerUser: number;
  /** How long the reason a session ended is kept for its device. */
  readonly reasonTtlMs: number;
}

export interface SessionValidateOptions {
  /** Write lastSeenAt at most this often. */
  readonly touchIntervalMs: number;
  /** Requests counted in this process since its last write, this one included. */
  readonly pendingCount: number;
  /** Tells an absolute expiry from an idle one once the session's key has expired. */
  readonly absoluteTimeoutMs: number;
  readonly reasonTtlMs: number;
}

export type SessionValidation =
  | { readonly session: StoredSession; readonly touched: boolean; readonly nowMs: number }
  | {
      readonly session: null;
      readonly reason: SessionEndReason | null;
      /**
       * True for the one validation that found the session past a deadline and ended it (by its
       * stored deadlines, or by its index once the key's TTL ran out); later validations of the
       * same session get the recorded reason without it. The expiry is reported once, from here.
       */
      readonly expiredNow?: true;
      /** The session as it was, when it expired during this very validation and its value was still there. */
      readonly expired?: StoredSession;
    };

/** Announcements between instances: what Sessions needs to tell every instance a session ended. */
export interface StoreChannels {
  readonly keys: KeySpace;
  /** True while commands can be sent (connected and not in the middle of a reconnect). */
  isReady(): boolean;

  /**
   * Publishes on a channel of this key space (sharded pub/sub on Cluster). Delivery is at most
   * once to the subscribers connected at that moment; nothing is stored.
   */
  publish(channel: string, message: string): Promise<void>;

  /**
   * Subscribes to a channel of this key space; resolves once the subscription is active and
   * returns the function that ends it. A subscription survives reconnects (and failovers).
   */
  subscribe(channel: string, listener: (message: string) => void): Promise<() => Promise<void>>;
}

export interface SessionOperations {
  /**
   * Stores a new session, first forgetting the user's expired sessions, then ending the oldest
   * beyond `maxPerUser` (reason `evicted-limit`), all in one atomic step.
   */
  createSession(
    ref: SessionRef,
    payload: Buffer,
    limits: SessionLimits,
  ): Promise<{ readonly session: StoredSession; readonly evicted: readonly string[] }>;

  /**
   * Checks a session against its deadlines and its user's index; when its last write is at
   * least `touchIntervalMs` old, writes lastSeenAt = now and adds `pendingCount` requests.
   */
  validateSession(ref: SessionRef, options: SessionValidateOptions): Promise<SessionValidation>;

  /** Writes buffered activity to a live session; false when it is gone. */
  touchSession(ref: SessionRef, addCount: number, lastSeenAtMs: number): Promise<boolean>;

  /** Ends one session; `ended` is true when it was live, `session` is what was stored when known. */
  revokeSession(
    ref: SessionRef,
    reason: SessionEndReason,
    reasonTtlMs: number,
  ): Promise<{ readonly ended: boolean; readonly session: StoredSession | null }>;

  /** Ends every session of a user but `exceptTokenHash`; returns the token hashes ended. */
  revokeUserSessions(
    uid: string,
    exceptTokenHash: string | null,
    reason: SessionEndReason,
    reasonTtlMs: number,
  ): Promise<readonly string[]>;

  /**
   * Deletes the keys of sessions already ended (out of the index): the scripts that end many
   * sessions at once cannot name their keys, so the caller removes them right after.
   */
  discardSessions(uid: string, tokenHashes: readonly string[]): Promise<void>;

  /** A user's live sessions, oldest first (forgetting expired ones, keeping why they ended). */
  listSessions(uid: string, limits: SessionLimits): Promise<readonly StoredSession[]>;

  /**
   * Puts a session read from durable storage back (cache refill), unless the store knows it
   * ended or its deadline has passed; true when it is there now. Evicts nothing.
   */
  restoreSession(ref: SessionRef, session: StoredSession, limits: SessionLimits): Promise<boolean>;

  /** Moves a live session to a new token hash with a new payload; null when it is not live. */
  rotateSession(
    ref: SessionRef,
    newTokenHash: string,
    payload: Buffer,
    reasonTtlMs: number,
  ): Promise<StoredSession | null>;
}

/** What Sessions needs of a store: its operations, and the channels that announce ended sessions. */
export interface SessionStore extends SessionOperations, StoreChannels {}
