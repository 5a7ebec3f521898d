/**
 * The public shapes of sessions: what callers give Sessions (packages/gatehouse/src/sessions/sessions.ts)
 * and what they get back.
 */
import type { SessionEndReason } from '../store/session-store.js';
import type { Duration } from '../util/duration.js';
import type { SessionRepository } from './repository.js';

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

export interface SessionInput {
  readonly userId: string;
  readonly organizationId?: string | null;
  readonly roles?: readonly string[];
  readonly permissions?: readonly string[];
  /** Personal data: sealed with the payload, never stored in clear. */
  readonly ip?: string | null;
  /** Personal data: sealed with the payload, never stored in clear. */
  readonly userAgent?: string | null;
  /** e.g. `password`, `sso`, `passkey`. Default `password`. */
  readonly authMethod?: string;
  /** Your own data (JSON), sealed with the rest. */
  readonly data?: JsonValue;
}

export interface Session {
  /** Public name of the session (not the token): list, show and terminate by it. */
  readonly handle: string;
  readonly userId: string;
  readonly organizationId: string | null;
  readonly roles: readonly string[];
  readonly permissions: readonly string[];
  readonly authMethod: string;
  readonly ip: string | null;
  readonly userAgent: string | null;
  readonly data: JsonValue | null;
  readonly createdAtMs: number;
  readonly lastSeenAtMs: number;
  /** When it ends if unused: min(last activity + idle timeout, absolute expiry). */
  readonly idleExpiresAtMs: number;
  readonly absoluteExpiresAtMs: number;
  readonly requestCount: number;
}

export type SessionAuditType =
  | 'session.created'
  | 'session.rotated'
  | 'session.revoked'
  | 'session.evicted'
  | 'session.expired-idle'
  | 'session.expired-absolute';

/** An audit record: who and what, never a token or a handle in clear. */
export interface SessionAuditEvent {
  readonly type: SessionAuditType;
  /**
   * The user id, when known: always, except for a revocation of a session already gone, and an
   * expiry found after the session's key ran out its TTL (its payload went with it).
   */
  readonly userId: string | null;
  /** Salted hash of the session handle: correlates records without naming the session. */
  readonly sessionHash: string;
}

export interface SessionsOptions {
  /** Default 30m. */
  readonly idleTimeout?: Duration;
  /** Default 12h. */
  readonly absoluteTimeout?: Duration;
  /** Default 5; the oldest session is ended when a user signs in once more. */
  readonly maxPerUser?: number;
  /** Write activity at most this often per session. Default 60s. */
  readonly touchInterval?: Duration;
  /** Write buffered activity this often. Default: the touch interval. */
  readonly flushInterval?: Duration;
  /** Receives an event for every session created, rotated, revoked, evicted or expired. */
  readonly audit?: (event: SessionAuditEvent) => void;
  /**
   * Durable mode: every session also kept in SQL. Redis stays the cache in front: a miss
   * refills from SQL (never an ended session), and while Redis is down validation reads SQL.
   */
  readonly repository?: SessionRepository;
  /**
   * How long this process may answer a validated session from memory without asking the store.
   * Default 1s; 0 turns it off. Used only while this instance listens to ended-session events,
   * which drop an ended session from the cache at once; the TTL bounds the staleness should an
   * event be lost (a subscriber that reconnected). Touch writes and deadlines are still honoured.
   */
  readonly localCacheTtl?: Duration;
  /** Sessions kept in the local cache at most. Default 10,000. */
  readonly localCacheMaxEntries?: number;
}

/** A session ended on some instance: close its live connections (SSE, WebSocket). */
export interface SessionEndedEvent {
  readonly handle: string;
  readonly reason: SessionEndReason;
  /** The application's word for why, when `revoke` was given one (e.g. `signout`). */
  readonly cause?: string;
}

export type SessionValidationResult =
  | { readonly session: Session; readonly reason: null }
  | { readonly session: null; readonly reason: SessionEndReason | null };
