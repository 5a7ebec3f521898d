/**
 * Idempotency keys for POST endpoints that must not run twice (a payment, a submitted form).
 *
 * The first request with a key claims it and runs; its response is stored, sealed, for 24 h.
 * A repeat with the same key and the same body gets the stored response; a repeat while the
 * first is still running gets `in-progress` (answer 409); the same key with another body gets
 * `mismatch` (answer 422). Keys are scoped (per user, per route) by the caller, and only a MAC
 * of scope and key, a MAC of the body and the sealed response are stored.
 *
 * What this stops: a retried or double-clicked request running twice, on any instance; a key
 * reused for a different request silently getting the first one's answer; stored responses
 * (which may hold personal data) being readable from Redis.
 * What it does not stop: two requests with different keys doing the same thing (the client
 * chooses keys), or a first request whose claim expired (`inFlightTtl`) before it completed
 * being run again by a retry; keep `inFlightTtl` above the longest request. While the store is
 * down, `begin` fails with StoreUnavailableError: run nothing you could not run twice.
 */
import { createHash } from 'node:crypto';

import type { KeyRing } from '../crypto/keyring.js';
import type { IdempotencyStore } from '../store/idempotency-store.js';
import { toMs, type Duration } from '../util/duration.js';
import { requireText } from '../util/validate.js';

export interface StoredResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
}

export type IdempotencyOutcome =
  | { readonly state: 'started' }
  | { readonly state: 'in-progress' }
  | { readonly state: 'mismatch' }
  | { readonly state: 'replay'; readonly response: StoredResponse };

export interface IdempotencyOptions {
  /** How long a response is kept for repeats. Default 24h. */
  readonly ttl?: Duration;
  /** How long a claim lasts if its request never completes or abandons. Default 60s. */
  readonly inFlightTtl?: Duration;
}

/** Bodies (request or stored response) beyond this are refused: the service limit is 1 MiB. */
export const MAX_IDEMPOTENT_BODY_BYTES = 1024 * 1024;
const MAX_KEY_LENGTH = 255;

function toBuffer(body: string | Buffer): Buffer {
  const buffer = typeof body === 'string' ? Buffer.from(body) : body;
  if (buffer.length > MAX_IDEMPOTENT_BODY_BYTES) throw new RangeError('body larger than 1 MiB');
  return buffer;
}

export class Idempotency {
  private readonly ttlMs: number;
  private readonly inFlightTtlMs: number;

  constructor(
    private readonly store: IdempotencyStore,
    private readonly keyRing: KeyRing,
    options: IdempotencyOptions = {},
  ) {
    this.ttlMs = toMs('idempotency.ttl', options.ttl ?? '24h');
    this.inFlightTtlMs = toMs('idempotency.inFlightTtl', options.inFlightTtl ?? '60s');
  }

  /**
   * Claims `key` within `scope` for this request body, or reports what became of the first
   * request with it. After `started`, call `complete` with the response, or `abandon` if the
   * request failed in a way a retry may repeat.
   * Stops: the same request running twice (retries, double clicks, concurrent duplicates on other
   * instances), and a reused key getting another request's answer (`mismatch`). Does not stop:
   * duplicates sent with different keys. Scope keys by user so one user cannot read another's
   * stored response by guessing their key.
   */
  async begin(scope: string, key: string, body: string | Buffer): Promise<IdempotencyOutcome> {
    const { id, bodyMac } = this.ids(scope, key, body);
    const outcome = await this.store.beginIdempotent(id, bodyMac, this.inFlightTtlMs);
    if (outcome.state !== 'replay') return outcome;
    const plaintext = this.keyRing.open(outcome.response, id);
    // A response sealed under a key since dropped from the ring cannot be replayed: treat the
    // request as a conflict rather than run it a second time.
    if (!plaintext) return { state: 'in-progress' };
    const stored = JSON.parse(plaintext.toString()) as { s: number; h: Record<string, string>; b: string };
    return {
      state: 'replay',
      response: { status: stored.s, headers: stored.h, body: Buffer.from(stored.b, 'base64') },
    };
  }

  /**
   * Stores the response of the request that got `started`, sealed (it may carry personal data);
   * false when its claim had expired (a retry may then already be running: do not store over it).
   */
  async complete(
    scope: string,
    key: string,
    body: string | Buffer,
    response: StoredResponse,
  ): Promise<boolean> {
    if (!Number.isInteger(response.status) || response.status < 100 || response.status > 599) {
      throw new TypeError('response.status must be an HTTP status');
    }
    const { id, bodyMac } = this.ids(scope, key, body);
    const sealed = this.keyRing.seal(
      Buffer.from(
        JSON.stringify({
          s: response.status,
          h: response.headers,
          b: toBuffer(response.body).toString('base64'),
        }),
      ),
      id,
    );
    return this.store.completeIdempotent(id, bodyMac, sealed, this.ttlMs);
  }

  /**
   * Releases the claim of a request that failed before doing anything, so a retry runs it again.
   * Only the claiming body releases a claim. Do not abandon after side effects: that would let a
   * retry repeat them.
   */
  async abandon(scope: string, key: string, body: string | Buffer): Promise<boolean> {
    const { id, bodyMac } = this.ids(scope, key, body);
    return this.store.abandonIdempotent(id, bodyMac);
  }

  private ids(scope: string, key: string, body: string | Buffer): { id: string; bodyMac: string } {
    requireText('scope', scope, MAX_KEY_LENGTH);
    requireText('key', key, MAX_KEY_LENGTH);
    // Identifier MACs use the ring's oldest key, so prepending a key finds the same records.
    const bodyDigest = createHash('sha256').update(toBuffer(body)).digest('base64url');
    return {
      id: this.keyRing.identifier('idempotency key', `${scope}\0${key}`, 22),
      bodyMac: this.keyRing.identifier('idempotency body', bodyDigest, 22),
    };
  }
}
