/**
 * The session token and handle formats.
 *
 * Token: 59 base64url characters, the user's 16-character pseudonym (HMAC of the user id, the
 * Cluster hash tag that keeps a user's keys together) followed by 43 characters of 256 random
 * bits. Only the first 128 bits of its SHA-256 name the stored session; a leaked key, dump or
 * handle does not give back the token.
 *
 * Handle: the public name of a session (listing, termination): the same pseudonym followed by the
 * 22-character token hash. It is not a credential: validating needs the token itself.
 */
import { createHash } from 'node:crypto';

import type { KeyRing } from '../crypto/keyring.js';
import type { SessionRef } from '../store/session-store.js';
import { randomToken } from '../util/tokens.js';

const PSEUDONYM_LENGTH = 16;
const SECRET_BYTES = 32;
export const TOKEN_LENGTH = PSEUDONYM_LENGTH + 43;
const TOKEN_HASH_LENGTH = 22;
export const HANDLE_LENGTH = PSEUDONYM_LENGTH + TOKEN_HASH_LENGTH;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** The user's pseudonym: the hash tag of their keys and the first part of their tokens and handles. */
export function userPseudonymOf(keyRing: KeyRing, userId: string): string {
  return keyRing.identifier('user', userId, PSEUDONYM_LENGTH);
}

function tokenHashOf(token: string): string {
  return createHash('sha256').update(token).digest('base64url').slice(0, TOKEN_HASH_LENGTH);
}

/** Where a token's session lives, or null when the token cannot be one (no store call needed). */
export function refFromToken(token: unknown): SessionRef | null {
  if (typeof token !== 'string' || token.length !== TOKEN_LENGTH || !BASE64URL.test(token)) return null;
  return { uid: token.slice(0, PSEUDONYM_LENGTH), tokenHash: tokenHashOf(token) };
}

/** Where a handle's session lives, or null when it cannot be a handle. */
export function refFromHandle(handle: unknown): SessionRef | null {
  if (typeof handle !== 'string' || handle.length !== HANDLE_LENGTH || !BASE64URL.test(handle)) return null;
  return { uid: handle.slice(0, PSEUDONYM_LENGTH), tokenHash: handle.slice(PSEUDONYM_LENGTH) };
}

export function handleOf(ref: SessionRef): string {
  return ref.uid + ref.tokenHash;
}

/** A new token of the user with pseudonym `uid`, and where its session will live. */
export function newToken(uid: string): { readonly token: string; readonly ref: SessionRef } {
  const token = uid + randomToken(SECRET_BYTES).toString('base64url');
  return { token, ref: { uid, tokenHash: tokenHashOf(token) } };
}

/**
 * A presented token, read once: where its session lives and its handle. Reading hashes the token;
 * a caller that needs the token more than once (HttpGuard: the owner, then the validation) reads
 * it once with Sessions.readToken and passes this instead of the string.
 */
export class SessionToken {
  readonly handle: string;

  constructor(readonly ref: SessionRef) {
    this.handle = handleOf(ref);
  }
}

/** Where a presented token (a string, or a SessionToken already read) points, or null. */
export function refOfPresented(token: unknown): SessionRef | null {
  return token instanceof SessionToken ? token.ref : refFromToken(token);
}
