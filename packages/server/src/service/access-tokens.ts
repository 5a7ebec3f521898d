/**
 * Short-lived access tokens for the reference service: JWTs signed with EdDSA (Ed25519), so other
 * services can verify them offline against the public keys from {@link AccessTokens.jwks}.
 *
 * The signing keys are not stored anywhere: each is the Ed25519 private key whose 32-byte seed is
 * `keyRing.derivedKeys('app:access-token-ed25519-v1')[i]` (HKDF-SHA-256 of the i-th secret key).
 * Every instance with the same `SECRET_KEYS` therefore signs with the same keys, and rotating
 * `SECRET_KEYS` (prepending a new key, keeping the old one) rotates the signer while tokens signed
 * by the old key keep verifying until the old key is dropped. Drop an old key only after the token
 * lifetime (`ttlMs`) has passed since the new one was added.
 *
 * Key ids (`kid`) are RFC 7638 JWK thumbprints (SHA-256, base64url) of the public key, the value
 * jose's `calculateJwkThumbprint` returns; they are public and stable for a given secret key.
 *
 * An access token is a bearer credential valid until it expires; it is not looked up anywhere, so
 * revoking the session it came from does not end it. Keep `ttlMs` short, and where a request must
 * honour revocation at once, also check the token's `sid` (or `jti`) against the session store.
 */
import { createHash, createPrivateKey, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';

import { jwtVerify, SignJWT, type JWK, type JWTHeaderParameters } from 'jose';

import type { KeyRing } from 'gatehouse';

/** The `KeyRing.derivedKeys` purpose the Ed25519 seeds are derived for. */
export const ACCESS_TOKEN_KEY_PURPOSE = 'app:access-token-ed25519-v1';
/** Tokens longer than this are refused without being parsed. */
export const MAX_ACCESS_TOKEN_LENGTH = 4096;
/** Leeway, in seconds, for clocks that disagree between the issuer and the verifier (`exp`, `iat`). */
export const ACCESS_TOKEN_CLOCK_TOLERANCE_SECONDS = 5;

const DEFAULT_TTL_MS = 15 * 60_000;
const MAX_TTL_MS = 24 * 60 * 60_000;
const MAX_CLAIM_LENGTH = 256;
const MAX_ROLES = 32;
const ALGORITHM = 'EdDSA';
const TYPE = 'JWT';
/** PKCS#8 DER prefix of an Ed25519 private key; the 32-byte seed follows. */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const JWT_SHAPE = /^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

export interface AccessTokensOptions {
  /** The `iss` claim put in every token and required when verifying. Unset: no `iss`. */
  readonly issuer?: string;
  /** The `aud` claim put in every token and required when verifying. Unset: no `aud`. */
  readonly audience?: string;
  /** Token lifetime in milliseconds: a whole number of seconds, 1 s to 24 h. Default 15 minutes. */
  readonly ttlMs?: number;
  /** Milliseconds since the epoch; `Date.now` by default. For tests. */
  readonly clock?: () => number;
}

/** What the service asks to be put in a token. */
export interface AccessTokenInput {
  /** The subject: the user id. A non-empty string of at most 256 characters. */
  readonly sub: string;
  /** The gatehouse session handle the token was issued for. A non-empty string of at most 256 characters. */
  readonly sid: string;
  /** The `org` claim: the user's organization id, or null (also when left out). */
  readonly org?: string | null;
  /** The `roles` claim: the session's roles (at most 32, each at most 256 characters). Default none. */
  readonly roles?: readonly string[];
}

export interface IssuedAccessToken {
  /** The compact JWT, to be sent as `Authorization: Bearer <token>`. */
  readonly token: string;
  /** Its unique id (128 random bits, base64url), also the `jti` claim. */
  readonly jti: string;
  /** When it stops verifying (the `exp` claim, in milliseconds; clock tolerance aside). */
  readonly expiresAtMs: number;
}

/** The claims of a token {@link AccessTokens.verify} accepted. */
export interface AccessTokenClaims {
  readonly sub: string;
  readonly sid: string;
  readonly org: string | null;
  readonly roles: readonly string[];
  readonly jti: string;
  /** The `iat` claim in milliseconds. */
  readonly issuedAtMs: number;
  /** The `exp` claim in milliseconds. */
  readonly expiresAtMs: number;
}

/** A public Ed25519 key as published in the JWKS. */
export interface AccessTokenPublicJwk extends JWK {
  readonly kty: 'OKP';
  readonly crv: 'Ed25519';
  readonly x: string;
  readonly kid: string;
  readonly alg: 'EdDSA';
  readonly use: 'sig';
}

interface SigningKey {
  readonly kid: string;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly x: string;
}

function signingKeyFromSeed(seed: Buffer): SigningKey {
  if (seed.length !== 32) throw new TypeError('an Ed25519 seed must be 32 bytes');
  const privateKey = createPrivateKey({
    key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]),
    format: 'der',
    type: 'pkcs8',
  });
  const publicKey = createPublicKey(privateKey);
  const { x } = publicKey.export({ format: 'jwk' });
  if (typeof x !== 'string') throw new Error('could not export the Ed25519 public key');
  // RFC 7638: SHA-256 of the required members, in lexicographic order, without whitespace.
  const kid = createHash('sha256')
    .update(JSON.stringify({ crv: 'Ed25519', kty: 'OKP', x }))
    .digest('base64url');
  return { kid, privateKey, publicKey, x };
}

function checkClaimText(name: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_CLAIM_LENGTH) {
    throw new TypeError(`${name} must be a non-empty string of at most ${MAX_CLAIM_LENGTH} characters`);
  }
  return value;
}

function isClaimText(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_CLAIM_LENGTH;
}

function isRoleList(value: unknown): value is string[] {
  return Array.isArray(value) && value.length <= MAX_ROLES && value.every(isClaimText);
}

/**
 * A cheap test of whether a bearer token has the shape of a compact JWS: three base64url segments,
 * the first starting with `eyJ` (`{"`). It verifies nothing; it tells a JWT from a gatehouse
 * session token, which is base64url without dots.
 */
export function looksLikeJwt(token: string): boolean {
  return token.length <= MAX_ACCESS_TOKEN_LENGTH && JWT_SHAPE.test(token);
}

/**
 * Issues and verifies EdDSA (Ed25519) access tokens with keys derived from a {@link KeyRing}. The
 * newest key signs; every key of the ring verifies.
 */
export class AccessTokens {
  /** Newest first, like the ring. */
  private readonly keys: readonly SigningKey[];
  private readonly keysById: ReadonlyMap<string, SigningKey>;
  private readonly issuer: string | undefined;
  private readonly audience: string | undefined;
  private readonly ttlSeconds: number;
  private readonly clock: () => number;

  /**
   * @throws TypeError when an option is not what {@link AccessTokensOptions} describes.
   */
  constructor(keyRing: KeyRing, options: AccessTokensOptions = {}) {
    const { issuer, audience, ttlMs = DEFAULT_TTL_MS, clock = Date.now } = options;
    if (issuer !== undefined) checkClaimText('issuer', issuer);
    if (audience !== undefined) checkClaimText('audience', audience);
    if (!Number.isSafeInteger(ttlMs) || ttlMs < 1000 || ttlMs > MAX_TTL_MS || ttlMs % 1000 !== 0) {
      throw new TypeError('ttlMs must be a whole number of seconds from 1 s to 24 h, in milliseconds');
    }
    if (typeof clock !== 'function') throw new TypeError('clock must be a function');
    this.issuer = issuer;
    this.audience = audience;
    this.ttlSeconds = ttlMs / 1000;
    this.clock = clock;
    this.keys = keyRing.derivedKeys(ACCESS_TOKEN_KEY_PURPOSE).map(signingKeyFromSeed);
    const byId = new Map<string, SigningKey>();
    // The same secret key twice in the ring gives the same kid; the first is as good as any.
    for (const key of this.keys) if (!byId.has(key.kid)) byId.set(key.kid, key);
    this.keysById = byId;
  }

  /** How long an access token lives. */
  get ttlMs(): number {
    return this.ttlSeconds * 1000;
  }

  /** @see looksLikeJwt */
  static looksLikeJwt(token: string): boolean {
    return looksLikeJwt(token);
  }

  /**
   * Signs a token for `claims` with the newest key: header `{alg: 'EdDSA', typ: 'JWT', kid}`,
   * claims `sub`, `sid`, `org`, `roles`, a fresh `jti`, `iat` (now, whole seconds), `exp` (`iat`
   * + `ttlMs`), and `iss` / `aud` when configured.
   *
   * @throws TypeError when `sub`, `sid` or `org` is not a non-empty string of at most 256
   * characters, or `roles` not a list of at most 32 such strings.
   */
  async issue(claims: AccessTokenInput): Promise<IssuedAccessToken> {
    const sub = checkClaimText('sub', claims.sub);
    const sid = checkClaimText('sid', claims.sid);
    const org = claims.org === undefined || claims.org === null ? null : checkClaimText('org', claims.org);
    const roles = [...(claims.roles ?? [])];
    if (!isRoleList(roles)) throw new TypeError(`roles must be at most ${MAX_ROLES} role names`);
    const signer = this.keys[0];
    if (!signer) throw new Error('empty key ring');
    const jti = randomBytes(16).toString('base64url');
    const iat = Math.floor(this.clock() / 1000);
    const exp = iat + this.ttlSeconds;
    const header: JWTHeaderParameters = { alg: ALGORITHM, typ: TYPE, kid: signer.kid };
    const jwt = new SignJWT({ sid, org, roles })
      .setProtectedHeader(header)
      .setSubject(sub)
      .setJti(jti)
      .setIssuedAt(iat)
      .setExpirationTime(exp);
    if (this.issuer !== undefined) jwt.setIssuer(this.issuer);
    if (this.audience !== undefined) jwt.setAudience(this.audience);
    const token = await jwt.sign(signer.privateKey);
    return { token, jti, expiresAtMs: exp * 1000 };
  }

  /**
   * The claims of `token` when it is a compact JWT with `alg` exactly `EdDSA` and `typ` `JWT`,
   * signed by the key of this ring its `kid` names, not expired, not issued in the future, not older
   * than `ttlMs`, with `sub`, `sid`, `jti`, `iat` and `exp` present (the first three non-empty
   * strings), `org` a string or null and `roles` a list of strings when present, and `iss` /
   * `aud` matching when configured. Clocks may disagree by
   * {@link ACCESS_TOKEN_CLOCK_TOLERANCE_SECONDS} seconds. Anything else, including a non-string or
   * a string longer than {@link MAX_ACCESS_TOKEN_LENGTH}, gives `null`; this never throws.
   *
   * It does not consult the session store: see the module comment about revocation.
   */
  async verify(token: unknown): Promise<AccessTokenClaims | null> {
    if (typeof token !== 'string' || token.length > MAX_ACCESS_TOKEN_LENGTH || !looksLikeJwt(token)) {
      return null;
    }
    try {
      const { payload } = await jwtVerify(
        token,
        (header) => {
          const key = typeof header.kid === 'string' ? this.keysById.get(header.kid) : undefined;
          if (!key) throw new Error('unknown kid');
          return key.publicKey;
        },
        {
          algorithms: [ALGORITHM],
          typ: TYPE,
          clockTolerance: ACCESS_TOKEN_CLOCK_TOLERANCE_SECONDS,
          maxTokenAge: this.ttlSeconds,
          currentDate: new Date(this.clock()),
          requiredClaims: ['sub', 'sid', 'jti', 'iat', 'exp'],
          ...(this.issuer !== undefined && { issuer: this.issuer }),
          ...(this.audience !== undefined && { audience: this.audience }),
        },
      );
      const { sub, jti, iat, exp } = payload;
      const sid: unknown = payload['sid'];
      const org: unknown = payload['org'] ?? null;
      const roles: unknown = payload['roles'] ?? [];
      if (!isClaimText(sub) || !isClaimText(sid) || !isClaimText(jti)) return null;
      if (!(org === null || isClaimText(org)) || !isRoleList(roles)) return null;
      if (typeof iat !== 'number' || typeof exp !== 'number') return null;
      return { sub, sid, org, roles, jti, issuedAtMs: iat * 1000, expiresAtMs: exp * 1000 };
    } catch {
      return null;
    }
  }

  /**
   * The JSON Web Key Set of the ring's public keys, newest first, for other services to verify
   * tokens offline (e.g. with jose's `createLocalJWKSet`). Public parts only: never `d`.
   */
  jwks(): { keys: AccessTokenPublicJwk[] } {
    return {
      keys: [...this.keysById.values()].map(({ kid, x }) => ({
        kty: 'OKP',
        crv: 'Ed25519',
        x,
        kid,
        alg: ALGORITHM,
        use: 'sig',
      })),
    };
  }
}
