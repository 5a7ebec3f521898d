/**
 * The key ring from `SECRET_KEYS` (newest first). Each purpose gets its own subkey through
 * HKDF-SHA-256, so a key is never used for two jobs:
 *
 * - encryption (AES-256-GCM): always with the newest key; every older key still decrypts, so
 *   keys rotate by prepending a new one and dropping the oldest after the data it sealed expired;
 * - identifiers (HMAC-SHA-256 of user ids, IPs, emails before they become part of a Redis key):
 *   with the OLDEST key, so prepending a key does not change them; dropping the oldest key does,
 *   so drop it only after the absolute session timeout has passed since the new key was added;
 * - audit hashes (HMAC of session handles): with the newest key.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';

/** The least a secret key may hold: 256 bits. */
export const SECRET_KEY_MIN_BYTES = 32;

/** Decodes one secret key written as text: hex is tried first (an even number of hex digits), then base64url. */
export function decodeSecretKey(text: string): Buffer | undefined {
  if (/^(?:[0-9a-fA-F]{2})+$/.test(text)) return Buffer.from(text, 'hex');
  if (/^[A-Za-z0-9_-]+$/.test(text)) return Buffer.from(text, 'base64url');
  return undefined;
}

const FORMAT_VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_ID_BYTES = 4;
const HEADER_BYTES = 1 + KEY_ID_BYTES + IV_BYTES;

function macWith(key: Buffer, domain: string, data: Buffer): Buffer {
  return createHmac('sha256', key).update(domain).update('\0').update(data).digest();
}

function subkey(secret: Buffer, purpose: string): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), `gatehouse ${purpose}`, 32));
}

interface EncryptionKey {
  readonly id: Buffer;
  readonly key: Buffer;
}

export class KeyRing {
  private readonly encryptionKeys: readonly EncryptionKey[];
  private readonly identifierKey: Buffer;
  /** Newest first, like the ring: the newest signs, every one verifies. */
  private readonly macKeys: readonly Buffer[];
  private readonly auditKey: Buffer;
  private readonly secretKeys: readonly Buffer[];

  constructor(secretKeys: readonly Buffer[]) {
    if (secretKeys.length === 0) throw new TypeError('the key ring needs at least one secret key');
    for (const key of secretKeys) {
      if (key.length < 32) throw new TypeError('each secret key must be at least 32 bytes');
    }
    this.encryptionKeys = secretKeys.map((secret) => {
      const key = subkey(secret, 'encryption v1');
      // A short public fingerprint tells which key sealed a value, whatever the ring's order.
      return { id: createHash('sha256').update(key).digest().subarray(0, KEY_ID_BYTES), key };
    });
    this.macKeys = secretKeys.map((secret) => subkey(secret, 'mac v1'));
    this.identifierKey = subkey(secretKeys[secretKeys.length - 1] ?? Buffer.alloc(0), 'identifiers v1');
    this.auditKey = subkey(secretKeys[0] ?? Buffer.alloc(0), 'audit v1');
    this.secretKeys = secretKeys.map((key) => Buffer.from(key));
  }

  /**
   * 32-byte keys for an application's own `purpose` (HKDF-SHA-256 of each secret key), newest
   * first, like the ring. Every instance with the same SECRET_KEYS derives the same keys, and
   * rotating SECRET_KEYS rotates them. Purposes gatehouse uses itself are refused.
   */
  derivedKeys(purpose: string): Buffer[] {
    if (!/^app:[\x21-\x7e][\x20-\x7e]{0,63}$/.test(purpose)) {
      throw new TypeError('purpose must be "app:" followed by 1 to 64 printable characters');
    }
    return this.secretKeys.map((secret) => subkey(secret, purpose));
  }

  /** A ring with one fresh random key, for tests and single-process development. */
  static random(): KeyRing {
    return new KeyRing([randomBytes(32)]);
  }

  /** AES-256-GCM with the newest key; `associatedData` binds the ciphertext to where it is stored. */
  seal(plaintext: Buffer, associatedData: string): Buffer {
    const newest = this.encryptionKeys[0];
    if (!newest) throw new Error('empty key ring');
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', newest.key, iv);
    cipher.setAAD(Buffer.from(associatedData));
    const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return Buffer.concat([Buffer.from([FORMAT_VERSION]), newest.id, iv, body, cipher.getAuthTag()]);
  }

  /** The plaintext, or `null` when the value was not sealed by a key of this ring for this place. */
  open(sealed: Buffer, associatedData: string): Buffer | null {
    if (sealed.length < HEADER_BYTES + TAG_BYTES || sealed[0] !== FORMAT_VERSION) return null;
    const id = sealed.subarray(1, 1 + KEY_ID_BYTES);
    const entry = this.encryptionKeys.find((candidate) => candidate.id.equals(id));
    if (!entry) return null;
    const iv = sealed.subarray(1 + KEY_ID_BYTES, HEADER_BYTES);
    const body = sealed.subarray(HEADER_BYTES, sealed.length - TAG_BYTES);
    try {
      const decipher = createDecipheriv('aes-256-gcm', entry.key, iv);
      decipher.setAAD(Buffer.from(associatedData));
      decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
      return Buffer.concat([decipher.update(body), decipher.final()]);
    } catch {
      return null;
    }
  }

  /**
   * A MAC of `data` for `domain` (e.g. `csrf`, `nonce`) with the newest key, `bytes` long.
   * Domains keep a MAC made for one purpose from verifying for another.
   */
  sign(domain: string, data: Buffer, bytes = 16): Buffer {
    const newest = this.macKeys[0];
    if (!newest) throw new Error('empty key ring');
    return macWith(newest, domain, data).subarray(0, bytes);
  }

  /** True when `mac` is `sign(domain, data)` under any key of the ring; compared in constant time. */
  verify(domain: string, data: Buffer, mac: Buffer): boolean {
    if (mac.length < 8 || mac.length > 32) return false;
    let valid = false;
    for (const key of this.macKeys) {
      // Every key is tried, so the time does not tell which one matched.
      if (timingSafeEqual(macWith(key, domain, data).subarray(0, mac.length), mac)) valid = true;
    }
    return valid;
  }

  /** A stable pseudonym for an identifier (HMAC-SHA-256, base64url, `length` characters). */
  identifier(kind: string, value: string, length = 16): string {
    return createHmac('sha256', this.identifierKey)
      .update(`${kind}\0${value}`)
      .digest('base64url')
      .slice(0, length);
  }

  /** A salted hash for audit records (so logs can correlate a session without naming it). */
  auditHash(value: string): string {
    return createHmac('sha256', this.auditKey).update(value).digest('base64url').slice(0, 22);
  }
}
