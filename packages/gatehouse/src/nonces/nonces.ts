/**
 * Single-use nonces, bound to a purpose (one public form, one invite), for submissions that
 * must not be replayed.
 *
 * A nonce is 63 base64url characters: a version byte, its expiry (ms), 24 random bytes and a
 * 16-byte MAC over all that and the purpose, under the key ring. Only a hash of it is stored,
 * with its TTL; consuming deletes the record in the same atomic step that reads it.
 *
 * What this stops: replays (a second submission with the same nonce, from anyone, on any
 * instance, even 50 at once: exactly one consume succeeds); use for another purpose (the MAC
 * covers the purpose); forged or guessed nonces (MAC, 192 random bits); use after expiry (the
 * expiry is inside the MAC and checked before the store). A leaked Redis dump gives no usable
 * nonce (only hashes).
 * What it does not stop: a client that fetched a valid nonce submitting once, automated or not
 * (pair it with rate limits), or a nonce stolen from the page before its first use.
 */
import type { KeyRing } from '../crypto/keyring.js';
import type { MarkerStore } from '../store/marker-store.js';
import { toMs, type Duration } from '../util/duration.js';
import { requireText } from '../util/validate.js';
import { decodeFixed, randomToken, readUint48, recordId, writeUint48 } from '../util/tokens.js';

export type NonceRefusal = 'malformed' | 'invalid' | 'expired' | 'used';

export type NonceResult = { readonly ok: true } | { readonly ok: false; readonly reason: NonceRefusal };

export interface NonceAuditEvent {
  readonly type: 'nonce.refused';
  readonly reason: NonceRefusal;
  /** Hash of the nonce record (never the nonce). */
  readonly nonceHash: string | null;
}

export interface NoncesOptions {
  /** Default lifetime. Default 30m. */
  readonly ttl?: Duration;
  readonly audit?: (event: NonceAuditEvent) => void;
}

const VERSION = 1;
const RANDOM_BYTES = 24;
const MAC_BYTES = 16;
const BODY_BYTES = 1 + 6 + RANDOM_BYTES;
export const NONCE_LENGTH = Math.ceil(((BODY_BYTES + MAC_BYTES) * 4) / 3);
const MAX_PURPOSE_LENGTH = 200;

function macData(purpose: string, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from(purpose), Buffer.from([0]), body]);
}

export class Nonces {
  private readonly defaultTtlMs: number;

  constructor(
    private readonly store: MarkerStore,
    private readonly keyRing: KeyRing,
    private readonly options: NoncesOptions = {},
  ) {
    this.defaultTtlMs = toMs('nonces.ttl', options.ttl ?? '30m');
  }

  /**
   * Issues a nonce good for one `consume(purpose, nonce)` within `ttl`. Fails with
   * StoreUnavailableError while the store is down (an unrecorded nonce could never be consumed).
   * Stops: forging or guessing nonces (192 random bits and a MAC over expiry and purpose). Does
   * not stop: anyone who can fetch the page from getting a nonce of their own (rate-limit that).
   */
  async issue(
    purpose: string,
    options: { ttl?: Duration } = {},
  ): Promise<{ nonce: string; expiresAtMs: number }> {
    requireText('purpose', purpose, MAX_PURPOSE_LENGTH);
    const ttlMs = options.ttl === undefined ? this.defaultTtlMs : toMs('ttl', options.ttl);
    if (ttlMs < 1) throw new RangeError('ttl must be at least 1 ms');
    const expiresAtMs = Date.now() + ttlMs;
    const body = Buffer.alloc(BODY_BYTES);
    body[0] = VERSION;
    writeUint48(body, expiresAtMs, 1);
    randomToken(RANDOM_BYTES).copy(body, 7);
    const nonce = Buffer.concat([
      body,
      this.keyRing.sign('nonce', macData(purpose, body), MAC_BYTES),
    ]).toString('base64url');
    await this.store.setMarker('nonce', recordId(nonce), '1', ttlMs, 'if-new');
    return { nonce, expiresAtMs };
  }

  /**
   * Spends the nonce. Exactly one call succeeds for a nonce; every other gets `used`. Malformed,
   * foreign (another purpose, or forged: `invalid`) and expired nonces are refused without a
   * store call. While the store is down this fails with StoreUnavailableError (fail closed):
   * "single use" cannot be promised without it. Note that a consume that timed out may still
   * have spent the nonce on the server.
   * Stops: replays, concurrent double submissions across instances, a nonce of one form used for
   * another, late use. Does not stop: the first use by whoever holds the nonce.
   */
  async consume(purpose: string, nonce: unknown): Promise<NonceResult> {
    requireText('purpose', purpose, MAX_PURPOSE_LENGTH);
    const bytes = decodeFixed(nonce, NONCE_LENGTH);
    if (!bytes || bytes.length !== BODY_BYTES + MAC_BYTES || bytes[0] !== VERSION) {
      return this.refuse('malformed', null);
    }
    const body = bytes.subarray(0, BODY_BYTES);
    const id = recordId(nonce as string);
    if (!this.keyRing.verify('nonce', macData(purpose, body), bytes.subarray(BODY_BYTES))) {
      return this.refuse('invalid', id);
    }
    if (readUint48(body, 1) <= Date.now()) return this.refuse('expired', id);
    const taken = await this.store.takeMarker('nonce', id);
    return taken === null ? this.refuse('used', id) : { ok: true };
  }

  private refuse(reason: NonceRefusal, id: string | null): NonceResult {
    this.options.audit?.({ type: 'nonce.refused', reason, nonceHash: id });
    return { ok: false, reason };
  }
}
