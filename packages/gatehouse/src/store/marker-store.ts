/**
 * The markers' part of the store (see ./store.ts): small single-key values with a TTL, for
 * nonces (packages/gatehouse/src/nonces/nonces.ts), CSRF token records
 * (packages/gatehouse/src/csrf/csrf.ts) and revocations
 * (packages/gatehouse/src/revocation/revocation.ts).
 */

/** Key areas of the small single-key markers (nonces, CSRF token records, revocations). */
export type MarkerArea = 'nonce' | 'csrf' | 'revoke';

/** `if-new`: only when absent (SET NX). `if-greater`: keep the larger number (never lower it). */
export type MarkerMode = 'always' | 'if-new' | 'if-greater';

export interface MarkerStore {
  /**
   * Stores a small value under `<prefix>:<area>.v1:<id>` with its TTL, in one step; `id` must be a
   * hash, never a raw token. True when written (false when `mode` kept the existing value; with
   * `if-greater` the TTL is still extended).
   */
  setMarker(area: MarkerArea, id: string, value: string, ttlMs: number, mode: MarkerMode): Promise<boolean>;

  /** Reads and deletes a marker in one step: of concurrent callers, exactly one gets the value. */
  takeMarker(area: MarkerArea, id: string): Promise<string | null>;

  /** Reads a marker, or null. */
  getMarker(area: MarkerArea, id: string): Promise<string | null>;
}
