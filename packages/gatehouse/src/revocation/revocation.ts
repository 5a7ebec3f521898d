/**
 * The revocation list for tokens that are verified offline (JWT access tokens): a deny-list of
 * token ids that lives exactly as long as the tokens, and a per-user "revoked before" time
 * that ends every token a user holds at once.
 *
 * What this stops: a stolen or signed-out token being accepted until it expires, on every
 * instance sharing the store. Token ids and user ids are HMAC'd before they become keys.
 * What it does not stop: use of a token by a service that does not ask (offline verification
 * alone cannot know), or use in the moment between the token's theft and its revocation.
 * While the store is down, `isRevoked` fails with StoreUnavailableError: callers must refuse
 * (fail closed), since "not revoked" cannot be known.
 */
import type { KeyRing } from '../crypto/keyring.js';
import type { MarkerStore } from '../store/marker-store.js';
import { toMs, type Duration } from '../util/duration.js';
import { requireText } from '../util/validate.js';

export interface RevocationAuditEvent {
  readonly type: 'token.revoked' | 'user.tokens-revoked';
  /** The user id for `user.tokens-revoked`; null for a single token (its id is not recorded). */
  readonly userId: string | null;
}

export interface RevocationsOptions {
  /** The longest lifetime of a token this list covers; a user's "revoked before" lives this long. Default 15m. */
  readonly maxTokenLifetime?: Duration;
  readonly audit?: (event: RevocationAuditEvent) => void;
}

const MAX_ID_LENGTH = 512;

export class Revocations {
  private readonly maxTokenLifetimeMs: number;

  constructor(
    private readonly store: MarkerStore,
    private readonly keyRing: KeyRing,
    private readonly options: RevocationsOptions = {},
  ) {
    this.maxTokenLifetimeMs = toMs('revocations.maxTokenLifetime', options.maxTokenLifetime ?? '15m');
  }

  /**
   * Revokes one token until `expiresAtMs` (its own expiry); a token already expired needs nothing.
   * Stops: further use of that token (sign-out, a stolen token) wherever `isRevoked` is asked.
   * Does not stop: use by verifiers that do not ask. The entry expires with the token, so the list
   * cannot grow without bound.
   */
  async revoke(tokenId: string, expiresAtMs: number): Promise<void> {
    requireText('tokenId', tokenId, MAX_ID_LENGTH);
    const ttlMs = Math.ceil(expiresAtMs - Date.now());
    if (!Number.isFinite(ttlMs)) throw new TypeError('expiresAtMs must be a number of milliseconds');
    if (ttlMs <= 0) return;
    await this.store.setMarker('revoke', this.tokenKey(tokenId), '1', ttlMs, 'always');
    this.options.audit?.({ type: 'token.revoked', userId: null });
  }

  /**
   * True when the token id was revoked. Fails with StoreUnavailableError while the store is down:
   * refuse the token then (fail closed), since "not revoked" cannot be known.
   */
  async isRevoked(tokenId: string): Promise<boolean> {
    requireText('tokenId', tokenId, MAX_ID_LENGTH);
    return (await this.store.getMarker('revoke', this.tokenKey(tokenId))) !== null;
  }

  /**
   * Revokes every token of the user issued before `beforeMs` (default now). The time only moves
   * forward: an older call arriving late cannot shorten an earlier revocation.
   * Stops: every token a user holds at once (password change, "sign out everywhere", a
   * compromised account), without knowing their ids. Does not stop: tokens issued afterwards.
   */
  async revokeUser(userId: string, beforeMs = Date.now()): Promise<void> {
    requireText('userId', userId, MAX_ID_LENGTH);
    await this.store.setMarker(
      'revoke',
      this.userKey(userId),
      String(Math.ceil(beforeMs)),
      this.maxTokenLifetimeMs,
      'if-greater',
    );
    this.options.audit?.({ type: 'user.tokens-revoked', userId });
  }

  /**
   * True when the user's tokens issued at `issuedAtMs` are revoked. With JWT `iat` in seconds,
   * pass `iat * 1000`: a token issued in the same second as the revocation counts as revoked
   * (the safe side).
   */
  async isRevokedForUser(userId: string, issuedAtMs: number): Promise<boolean> {
    requireText('userId', userId, MAX_ID_LENGTH);
    const before = await this.store.getMarker('revoke', this.userKey(userId));
    return before !== null && issuedAtMs < Number(before);
  }

  /**
   * Both checks at once: the token's id, and its user's "revoked before" time. Use this for every
   * accepted token; it stops and does not stop what the two checks do.
   */
  async check(token: { tokenId: string; userId: string; issuedAtMs: number }): Promise<boolean> {
    const [byId, byUser] = await Promise.all([
      this.isRevoked(token.tokenId),
      this.isRevokedForUser(token.userId, token.issuedAtMs),
    ]);
    return byId || byUser;
  }

  private tokenKey(tokenId: string): string {
    return `t:${this.keyRing.identifier('token', tokenId, 22)}`;
  }

  private userKey(userId: string): string {
    return `u:${this.keyRing.identifier('user', userId, 22)}`;
  }
}
