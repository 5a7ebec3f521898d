/**
 * The idempotency records' part of the store (see ./store.ts), used by
 * packages/gatehouse/src/idempotency/idempotency.ts.
 */

export type IdempotencyBegin =
  | { readonly state: 'started' | 'in-progress' | 'mismatch' }
  | { readonly state: 'replay'; readonly response: Buffer };

export interface IdempotencyStore {
  /**
   * Claims an idempotency record (`id` is a MAC of scope and key) for a body (`bodyMac`, 22
   * characters), or reports the first request's fate: running, a different body, or its response.
   */
  beginIdempotent(id: string, bodyMac: string, inFlightTtlMs: number): Promise<IdempotencyBegin>;

  /** Stores the response of the claiming request; false when the claim is gone. */
  completeIdempotent(id: string, bodyMac: string, response: Buffer, ttlMs: number): Promise<boolean>;

  /** Releases a running claim whose request failed; false when there was none. */
  abandonIdempotent(id: string, bodyMac: string): Promise<boolean>;
}
