/**
 * The sealed payload of a session: who it is for and what it carries (user, organization, roles,
 * permissions, sign-in method, IP, user agent, the application's data), sealed (AES-256-GCM) with
 * the key ring, bound to the session's handle. The store keeps only the sealed bytes; the public
 * `Session` is the stored session (times, counts) with its payload opened.
 */
import type { KeyRing } from '../crypto/keyring.js';
import type { SessionRef, StoredSession } from '../store/session-store.js';
import { handleOf } from './token.js';
import type { JsonValue, Session, SessionInput } from './types.js';

export interface Payload {
  u: string;
  o: string | null;
  r: string[];
  p: string[];
  m: string;
  i: string | null;
  a: string | null;
  d: JsonValue | null;
}

const DEFAULT_AUTH_METHOD = 'password';

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

function checkStrings(name: string, values: unknown): string[] {
  if (values === undefined) return [];
  if (!Array.isArray(values)) throw new TypeError(`${name} must be an array of strings`);
  return values.map((value: unknown) => {
    if (typeof value !== 'string') throw new TypeError(`${name} must be an array of strings`);
    return value;
  });
}

/** The payload of a new session; a TypeError when the input is not one. */
export function payloadFromInput(input: SessionInput): Payload {
  if (typeof input.userId !== 'string' || input.userId === '')
    throw new TypeError('userId must be a non-empty string');
  return {
    u: input.userId,
    o: input.organizationId ?? null,
    r: checkStrings('roles', input.roles),
    p: checkStrings('permissions', input.permissions),
    m: input.authMethod ?? DEFAULT_AUTH_METHOD,
    i: input.ip ?? null,
    a: input.userAgent ?? null,
    d: input.data ?? null,
  };
}

/** The payload a session was made from (to carry it to a new token). */
export function payloadOf(session: Session): Payload {
  return {
    u: session.userId,
    o: session.organizationId,
    r: [...session.roles],
    p: [...session.permissions],
    m: session.authMethod,
    i: session.ip,
    a: session.userAgent,
    d: session.data,
  };
}

/**
 * Seals the payload as a JSON array with defaults left out at the end: field names and
 * default values would cost Redis memory on every session (and push values past a jemalloc
 * size class).
 */
export function sealPayload(keyRing: KeyRing, ref: SessionRef, payload: Payload): Buffer {
  const fields: unknown[] = [
    payload.u,
    payload.o,
    payload.r,
    payload.i,
    payload.a,
    payload.m === DEFAULT_AUTH_METHOD ? null : payload.m,
    payload.p.length === 0 ? null : payload.p,
    payload.d,
  ];
  while (fields.length > 0 && fields[fields.length - 1] === null) fields.pop();
  return keyRing.seal(Buffer.from(JSON.stringify(fields)), handleOf(ref));
}

/**
 * The payload sealed for the session `handle`, or null when no key of the ring opens it (a key
 * retired too early, or tampering). Frozen: payloads are shared by every Session made from them.
 */
export function openPayload(keyRing: KeyRing, handle: string, sealed: Buffer): Payload | null {
  const plaintext = keyRing.open(sealed, handle);
  if (!plaintext) return null;
  const [u, o, r, i, a, m, p, d] = JSON.parse(plaintext.toString()) as [
    string,
    (string | null)?,
    string[]?,
    (string | null)?,
    (string | null)?,
    (string | null)?,
    (string[] | null)?,
    (JsonValue | null)?,
  ];
  return deepFreeze({
    u,
    o: o ?? null,
    r: r ?? [],
    i: i ?? null,
    a: a ?? null,
    m: m ?? DEFAULT_AUTH_METHOD,
    p: p ?? [],
    d: d ?? null,
  });
}

/** The public Session: the stored session's times and counts with its opened payload. */
export function presentSession(ref: SessionRef, stored: StoredSession, payload: Payload): Session {
  return {
    handle: handleOf(ref),
    userId: payload.u,
    organizationId: payload.o,
    roles: payload.r,
    permissions: payload.p,
    authMethod: payload.m,
    ip: payload.i,
    userAgent: payload.a,
    data: payload.d,
    createdAtMs: stored.createdAtMs,
    lastSeenAtMs: stored.lastSeenAtMs,
    idleExpiresAtMs: Math.min(stored.lastSeenAtMs + stored.idleTimeoutMs, stored.absoluteExpiresAtMs),
    absoluteExpiresAtMs: stored.absoluteExpiresAtMs,
    requestCount: stored.requestCount,
  };
}
