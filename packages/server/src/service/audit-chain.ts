/**
 * The keyed hash chain of the audit log (packages/server/src/service/audit.ts): how one row is
 * hashed, which key hashed it, and how a chain is checked row by row.
 *
 * Each row's `hash` is an HMAC-SHA-256 of its fields and of the previous row's hash, keyed by a
 * key derived from SECRET_KEYS (`KeyRing.derivedKeys(AUDIT_CHAIN_KEY_PURPOSE)`, one per secret
 * key), so someone who can write the database but does not hold SECRET_KEYS cannot rewrite a
 * row and re-chain the rows after it. Each row names its key by `keyId`, a public fingerprint:
 * after a rotation (a new key first in SECRET_KEYS, the old ones kept) new rows use the newest
 * key and old rows still verify with theirs. A row whose key is not in the ring does not verify
 * (`unknown-key`): to check rows made under a key since dropped from SECRET_KEYS, run the check
 * with that key appended to SECRET_KEYS.
 *
 * Rows without a key id (written by the unkeyed SHA-256 chain of the version before) are refused
 * (`unkeyed`), wherever they are in the chain. Accepting them, even only as a prefix, would let
 * anyone with DATABASE_URL replace the whole table by a self-consistent unkeyed chain that
 * verifies; the software had no release with the unkeyed chain, so no deployment loses rows it
 * needs. A database that holds such rows keeps them (the table is append-only) and fails the
 * check at its first row: start such development databases afresh.
 *
 * @module
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

import type { KeyRing } from 'gatehouse';

type Scalar = string | number | boolean | null;

/** One stored row of the chain. */
export interface AuditRow {
  readonly id: number;
  readonly atMs: number;
  readonly type: string;
  readonly outcome: string;
  readonly userId: string | null;
  readonly sessionHash: string | null;
  readonly requestId: string | null;
  readonly details: Readonly<Record<string, Scalar>>;
  /** The previous row's hash; {@link GENESIS_HASH} for row 1. */
  readonly prevHash: string;
  /** The fingerprint of the key that made `hash` ({@link auditKeyId}); null only in unkeyed rows. */
  readonly keyId: string | null;
  readonly hash: string;
}

/** A row's place in the chain, as the log's `audit anchor` lines write it. */
export interface AuditAnchor {
  readonly id: number;
  readonly hash: string;
}

/** One chain key: the derived key and its public fingerprint. */
export interface AuditChainKey {
  readonly id: string;
  readonly key: Buffer;
}

/**
 * Why a row does not verify: its id does not follow the previous row's (`gap`: a row removed or
 * inserted), its `prev_hash` is not the previous row's hash (`chain-broken`), it has no key id
 * (`unkeyed`), its key is not in the ring (`unknown-key`), or its hash does not match its fields
 * (`hash-mismatch`). With an anchor to check: the anchored row is not in the table any more
 * (`anchor-missing`: the newest rows were removed) or holds another hash (`anchor-mismatch`).
 */
export type AuditProblem =
  'gap' | 'chain-broken' | 'unkeyed' | 'unknown-key' | 'hash-mismatch' | 'anchor-missing' | 'anchor-mismatch';

/** `prev_hash` of the first row. */
export const GENESIS_HASH = '0'.repeat(64);

/** The purpose the chain keys are derived for; changing it re-keys every chain. */
export const AUDIT_CHAIN_KEY_PURPOSE = 'app:audit-chain-v1';

const HASH_SHAPE = /^[0-9a-f]{64}$/;

/**
 * The public fingerprint of a chain key: 16 hex digits of an HMAC of a fixed text under the key.
 * It tells which key made a row without saying anything that helps to find the key.
 */
export function auditKeyId(key: Buffer): string {
  return createHmac('sha256', key).update('gatehouse audit key id').digest('hex').slice(0, 16);
}

/** The ring's chain keys, newest first (the first one hashes new rows). */
export function auditChainKeys(keyRing: KeyRing): AuditChainKey[] {
  return keyRing.derivedKeys(AUDIT_CHAIN_KEY_PURPOSE).map((key) => ({ id: auditKeyId(key), key }));
}

/**
 * The hash of one row: HMAC-SHA-256 under `key`, hex, of the JSON array
 * `[id, atMs, type, outcome, userId, sessionHash, requestId, details, prevHash, keyId]` where
 * `details` is its `[key, value]` pairs sorted by key (code-unit order). Exported so that other
 * tools holding the key can check a chain without this module's classes.
 */
export function hashAuditRow(row: Omit<AuditRow, 'hash'>, key: Buffer): string {
  const canonical = JSON.stringify([
    row.id,
    row.atMs,
    row.type,
    row.outcome,
    row.userId,
    row.sessionHash,
    row.requestId,
    canonicalDetails(row.details),
    row.prevHash,
    row.keyId,
  ]);
  return createHmac('sha256', key).update(canonical, 'utf8').digest('hex');
}

/**
 * Checks a chain one row at a time, in id order from row 1: {@link check} returns the first
 * problem of a row, or null and moves on; {@link finish}, after the last row, whether an anchor
 * to check was never met. `rows` counts the rows found sound, `head` is the last of them.
 */
export class AuditChainVerifier {
  #rows = 0;
  #head: AuditAnchor | null = null;
  readonly #keys: ReadonlyMap<string, Buffer>;

  /** `anchor`: a row the chain must hold with that hash (an `audit anchor` line's). */
  constructor(
    keys: readonly AuditChainKey[],
    private readonly anchor?: AuditAnchor,
  ) {
    this.#keys = new Map(keys.map((entry) => [entry.id, entry.key]));
  }

  get rows(): number {
    return this.#rows;
  }

  get head(): AuditAnchor | null {
    return this.#head;
  }

  check(row: AuditRow): AuditProblem | null {
    if (row.id !== (this.#head?.id ?? 0) + 1) return 'gap';
    if (row.prevHash !== (this.#head?.hash ?? GENESIS_HASH)) return 'chain-broken';
    if (row.keyId === null) return 'unkeyed';
    const key = this.#keys.get(row.keyId);
    if (key === undefined) return 'unknown-key';
    if (!sameHash(hashAuditRow(row, key), row.hash)) return 'hash-mismatch';
    if (this.anchor?.id === row.id && this.anchor.hash !== row.hash) return 'anchor-mismatch';
    this.#rows += 1;
    this.#head = { id: row.id, hash: row.hash };
    return null;
  }

  /** After the last row: `anchor-missing` when the anchored row is beyond it (the table lost it). */
  finish(): AuditProblem | null {
    return this.anchor !== undefined && this.anchor.id > (this.#head?.id ?? 0) ? 'anchor-missing' : null;
  }
}

/** Compared in constant time: a MAC must not be found byte by byte through timing. */
function sameHash(expected: string, stored: string): boolean {
  if (!HASH_SHAPE.test(stored)) return false;
  return timingSafeEqual(Buffer.from(expected, 'hex'), Buffer.from(stored, 'hex'));
}

function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Details as sorted pairs: key order in JSON objects (jsonb reorders them) does not matter. */
function canonicalDetails(details: unknown): unknown {
  if (details === null || typeof details !== 'object' || Array.isArray(details)) return details;
  return Object.entries(details).sort(([a], [b]) => compareKeys(a, b));
}
