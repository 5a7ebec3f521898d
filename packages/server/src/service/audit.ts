/**
 * The reference service's audit log: an append-only, hash-chained table in the service database
 * (`audit_log`, created by {@link migrate}), mirrored line by line to the service logger.
 *
 * Each row's `hash` is a keyed hash (HMAC-SHA-256, a key derived from SECRET_KEYS) of its fields
 * and of the previous row's hash, and ids run 1, 2, 3... without gaps, so {@link AuditLog.verify}
 * finds a row edited, removed or inserted in the middle of the chain, even by someone who can
 * write the database but does not hold SECRET_KEYS. How rows are hashed and keyed, rotation, and
 * why rows of the earlier unkeyed chain are refused: packages/server/src/service/audit-chain.ts.
 * A trigger refuses UPDATE and DELETE.
 *
 * What a chain alone cannot show is the loss (or the wholesale rewrite, by someone holding the
 * key) of its newest rows. So the log gets anchors: at most once per `anchorIntervalMs` (a
 * minute), when this instance appended rows since its last anchor, and on {@link AuditLog.close},
 * an `audit anchor` line at info level with the newest row's id and hash (`auditAnchor: {id,
 * hash, keyId}`). `gatehouse audit verify --anchor <id>:<hash>` checks the table against one.
 *
 * The service is under HIPAA: no PHI and no secrets belong here. Details are scalars only, keys that
 * look like credentials are dropped, and strings are capped at {@link MAX_STRING_LENGTH} characters.
 *
 * @module
 */
import type { KeyRing, SqlQueryable } from 'gatehouse';

import {
  AuditChainVerifier,
  auditChainKeys,
  GENESIS_HASH,
  hashAuditRow,
  type AuditAnchor,
  type AuditChainKey,
  type AuditProblem,
  type AuditRow,
} from './audit-chain.js';
import type { Database } from './db.js';

/** One event to record. Put identifiers and counts in `details`, never PHI or secrets. */
export interface AuditEvent {
  /** What happened, e.g. `login`, `session.revoke`, `form.response.read`. */
  type: string;
  outcome: 'success' | 'failure' | 'info';
  userId?: string | null;
  /** A hash of the session token, never the token itself. */
  sessionHash?: string | null;
  requestId?: string | null;
  /** Scalars only; secret-looking keys and non-scalar values are dropped with a warning. */
  details?: Record<string, string | number | boolean | null>;
}

/** The logger the audit log writes to; a pino logger satisfies it. */
export interface AuditLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** How an {@link AuditLog} keys its chain and anchors it. */
export interface AuditLogOptions {
  /** The service's key ring (`gh.keyRing`): the chain keys are derived from it. */
  readonly keyRing: KeyRing;
  /**
   * The least time between two `audit anchor` lines. Default {@link ANCHOR_INTERVAL_MS}; shorter
   * in tests only (no environment variable sets it).
   */
  readonly anchorIntervalMs?: number;
}

/**
 * The result of {@link AuditLog.verify}. `rows` counts the rows found sound and `head` is the
 * newest of them (null for an empty table); when `ok` is false, `firstBadId` is the first row that
 * is not, and `problem` says why (see {@link AuditProblem}).
 */
export type AuditVerification =
  | { ok: true; rows: number; head: AuditAnchor | null }
  | { ok: false; rows: number; firstBadId: number; problem: AuditProblem };

/** Without a shorter `anchorIntervalMs`, anchors are written at most once a minute. */
export const ANCHOR_INTERVAL_MS = 60_000;

/** The longest string kept, in UTF-16 code units; longer strings are cut. */
export const MAX_STRING_LENGTH = 200;

/** The most detail keys kept per event. */
export const MAX_DETAIL_KEYS = 32;

/** The most appends queued by {@link AuditLog.record} before further events are refused (and logged). */
export const MAX_PENDING_APPENDS = 10_000;

/** The advisory lock that makes appends from every instance one linear chain on PostgreSQL. */
export const AUDIT_APPEND_LOCK = 7461002;

const VERIFY_PAGE_SIZE = 1000;
const MAX_RECENT = 1000;
const OUTCOMES: ReadonlySet<string> = new Set(['success', 'failure', 'info']);
// Word fragments, anywhere in the key and in any case: `apiToken`, `Set-Cookie`, `client_secret`.
const SECRET_KEY = /passw|pwd|token|cookie|authorization|secret|api[-_]?key|credential|private[-_]?key/i;
// Keys are plain identifiers: no control characters, nothing the database cannot store.
const KEY_SHAPE = /^[A-Za-z0-9_.:-]{1,64}$/;
const COLUMNS =
  'id, at_ms, type, outcome, user_id, session_hash, request_id, details, prev_hash, key_id, hash';

type Scalar = string | number | boolean | null;

/** An event after sanitizing, stamped with its time: everything a row holds but its place in the chain. */
interface Entry {
  atMs: number;
  type: string;
  outcome: string;
  userId: string | null;
  sessionHash: string | null;
  requestId: string | null;
  details: Record<string, Scalar>;
}

interface DbRow {
  id: number | string;
  at_ms: number | string;
  type: string;
  outcome: string;
  user_id: string | null;
  session_hash: string | null;
  request_id: string | null;
  details: unknown;
  prev_hash: string;
  key_id: string | null;
  hash: string;
}

/**
 * The audit log of one service instance. {@link record} is for request paths: it never throws and
 * never waits. Appends from this instance run one at a time; appends from other instances sharing
 * the PostgreSQL database wait on an advisory lock, so the chain stays linear.
 */
export class AuditLog {
  #tail: Promise<unknown> = Promise.resolve();
  #pending = 0;
  /** Newest first: the first hashes new rows, every one verifies. */
  readonly #keys: readonly AuditChainKey[];
  readonly #anchorIntervalMs: number;
  /** The newest row this instance appended, and the newest one it wrote an anchor for. */
  #head: AuditRow | null = null;
  #anchoredId = 0;
  #anchorTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(
    private readonly db: Database,
    private readonly logger: AuditLogger,
    options: AuditLogOptions,
  ) {
    this.#keys = auditChainKeys(options.keyRing);
    const interval = options.anchorIntervalMs ?? ANCHOR_INTERVAL_MS;
    if (!Number.isInteger(interval) || interval <= 0) {
      throw new RangeError('anchorIntervalMs must be a positive integer');
    }
    this.#anchorIntervalMs = interval;
  }

  /**
   * Logs the event at once and queues its append. Never throws: an invalid event, a full queue or a
   * failed append is reported through `logger.error`, and later appends go on.
   */
  record(event: AuditEvent): void {
    try {
      const entry = this.#prepare(event);
      if (this.#pending >= MAX_PENDING_APPENDS) {
        safely(() => {
          this.logger.error({ audit: entry }, 'audit append refused: queue full');
        });
        return;
      }
      this.#enqueue(entry).catch((error: unknown) => {
        safely(() => {
          this.logger.error({ err: error, audit: entry }, 'audit append failed');
        });
      });
    } catch (error) {
      safely(() => {
        this.logger.error({ err: error }, 'audit event refused');
      });
    }
  }

  /**
   * Logs the event and appends it; resolves with the stored row. Rejects when the event is invalid
   * (empty `type`, unknown `outcome`) or the append fails; the chain is unchanged then.
   */
  async append(event: AuditEvent): Promise<AuditRow> {
    const entry = this.#prepare(event);
    return this.#enqueue(entry);
  }

  /** Resolves when every append queued so far, and any queued while waiting, has settled. */
  async flush(): Promise<void> {
    let tail: Promise<unknown>;
    do {
      tail = this.#tail;
      await tail;
    } while (tail !== this.#tail);
  }

  /**
   * Waits for every queued append, then writes the last anchor (when rows were appended since the
   * one before) and stops the anchor timer. Appends after this still work, without anchors.
   */
  async close(): Promise<void> {
    this.#closed = true;
    await this.flush();
    clearTimeout(this.#anchorTimer);
    this.#anchorTimer = undefined;
    this.#writeAnchor();
  }

  /**
   * Reads the whole chain in id order, a page at a time, and checks every row with the ring's
   * chain keys. Rows appended while it runs are checked too. With `anchor` (an `audit anchor`
   * line's id and hash), the row of that id must be in the chain with that hash.
   */
  async verify(options: { anchor?: AuditAnchor } = {}): Promise<AuditVerification> {
    const verifier = new AuditChainVerifier(this.#keys, options.anchor);
    for (;;) {
      const head = verifier.head;
      // The first page has no lower bound, so a row slipped in below id 1 shows up as a gap too.
      const { rows: page } =
        head === null
          ? await this.db.query(`SELECT ${COLUMNS} FROM audit_log ORDER BY id LIMIT $1`, [VERIFY_PAGE_SIZE])
          : await this.db.query(`SELECT ${COLUMNS} FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2`, [
              head.id,
              VERIFY_PAGE_SIZE,
            ]);
      for (const raw of page as DbRow[]) {
        const row = fromDb(raw);
        const problem = verifier.check(row);
        if (problem !== null) return { ok: false, rows: verifier.rows, firstBadId: row.id, problem };
      }
      if (page.length < VERIFY_PAGE_SIZE) break;
    }
    const missing = verifier.finish();
    if (missing !== null && options.anchor !== undefined) {
      // The anchored row was written and logged: the table lost it, and every row after it.
      return { ok: false, rows: verifier.rows, firstBadId: options.anchor.id, problem: missing };
    }
    return { ok: true, rows: verifier.rows, head: verifier.head };
  }

  /** The newest `limit` rows (at most 1000), newest first. */
  async recent(limit: number): Promise<AuditRow[]> {
    if (!Number.isInteger(limit) || limit < 0) throw new RangeError('limit must be a non-negative integer');
    const { rows } = await this.db.query(`SELECT ${COLUMNS} FROM audit_log ORDER BY id DESC LIMIT $1`, [
      Math.min(limit, MAX_RECENT),
    ]);
    return (rows as DbRow[]).map(fromDb);
  }

  /** Sanitizes and stamps the event, and writes its log line. Throws on an invalid event only. */
  #prepare(event: AuditEvent): Entry {
    const { type, outcome } = event;
    if (typeof type !== 'string' || type === '')
      throw new TypeError('audit event type must be a non-empty string');
    if (typeof outcome !== 'string' || !OUTCOMES.has(outcome)) {
      throw new TypeError('audit event outcome must be success, failure or info');
    }
    const cleanType = cleanString(type);
    const entry: Entry = {
      atMs: Date.now(),
      type: cleanType,
      outcome,
      userId: optionalString(event.userId, 'userId'),
      sessionHash: optionalString(event.sessionHash, 'sessionHash'),
      requestId: optionalString(event.requestId, 'requestId'),
      details: this.#cleanDetails(cleanType, event.details),
    };
    // A throwing logger must not cost the database row.
    safely(() => {
      this.logger.info({ audit: entry }, 'audit');
    });
    return entry;
  }

  /** Keeps scalar values under plain, non-secret keys; reports what it dropped (never the values). */
  #cleanDetails(type: string, details: unknown): Record<string, Scalar> {
    const kept: Record<string, Scalar> = {};
    if (details === undefined || details === null) return kept;
    const dropped: Array<{ key?: string; reason: string }> = [];
    if (typeof details !== 'object' || Array.isArray(details)) {
      dropped.push({ reason: 'details-not-an-object' });
    } else {
      for (const [key, value] of Object.entries(details as Record<string, unknown>)) {
        if (value === undefined) continue;
        // A malformed key may itself hold anything: report the reason only.
        if (!KEY_SHAPE.test(key)) dropped.push({ reason: 'bad-key' });
        else if (SECRET_KEY.test(key)) dropped.push({ key, reason: 'secret-key' });
        else if (Object.keys(kept).length >= MAX_DETAIL_KEYS) dropped.push({ key, reason: 'too-many-keys' });
        else {
          const scalar = toScalar(value);
          if (typeof scalar === 'object' && scalar !== null) dropped.push({ key, reason: scalar.reason });
          else kept[key] = scalar;
        }
      }
    }
    if (dropped.length > 0) {
      safely(() => {
        this.logger.warn({ audit: { type, dropped } }, 'audit details dropped');
      });
    }
    return sortedRecord(kept);
  }

  /** Queues one append behind the others of this instance; a failure does not stop the queue. */
  #enqueue(entry: Entry): Promise<AuditRow> {
    this.#pending += 1;
    const result = this.#tail.then(() => this.#write(entry));
    this.#tail = result.then(
      () => {
        this.#pending -= 1;
      },
      () => {
        this.#pending -= 1;
      },
    );
    return result;
  }

  /** One append: in a transaction, under the chain lock on PostgreSQL, after the newest row. */
  async #write(entry: Entry): Promise<AuditRow> {
    const newest = this.#keys[0];
    if (newest === undefined) throw new Error('the audit log has no chain key');
    const row = await this.db.transaction(async (tx: SqlQueryable) => {
      if (this.db.kind === 'postgres') await tx.query(`SELECT pg_advisory_xact_lock(${AUDIT_APPEND_LOCK})`);
      const { rows } = await tx.query('SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1');
      const last = rows[0] as { id: number | string; hash: string } | undefined;
      const fields: Omit<AuditRow, 'hash'> = {
        id: last === undefined ? 1 : Number(last.id) + 1,
        ...entry,
        prevHash: last === undefined ? GENESIS_HASH : last.hash,
        keyId: newest.id,
      };
      const appended: AuditRow = { ...fields, hash: hashAuditRow(fields, newest.key) };
      await tx.query(
        `INSERT INTO audit_log (${COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $11)`,
        [
          appended.id,
          appended.atMs,
          appended.type,
          appended.outcome,
          appended.userId,
          appended.sessionHash,
          appended.requestId,
          JSON.stringify(appended.details),
          appended.prevHash,
          appended.keyId,
          appended.hash,
        ],
      );
      return appended;
    });
    this.#head = row;
    this.#scheduleAnchor();
    return row;
  }

  /** The next anchor, a whole interval after the first append since the last one. */
  #scheduleAnchor(): void {
    if (this.#closed || this.#anchorTimer !== undefined) return;
    this.#anchorTimer = setTimeout(() => {
      this.#anchorTimer = undefined;
      this.#writeAnchor();
    }, this.#anchorIntervalMs);
    // An anchor due must not keep a finished process alive; close() writes the last one.
    this.#anchorTimer.unref();
  }

  /** Logs the newest row this instance appended, unless it was anchored already. */
  #writeAnchor(): void {
    const head = this.#head;
    if (head === null || head.id === this.#anchoredId) return;
    this.#anchoredId = head.id;
    safely(() => {
      this.logger.info({ auditAnchor: { id: head.id, hash: head.hash, keyId: head.keyId } }, 'audit anchor');
    });
  }
}

function safely(fn: () => void): void {
  try {
    fn();
  } catch {
    // A logger that throws must not make record() throw, nor stop an append.
  }
}

/** A value as stored, or why it is not kept. */
function toScalar(value: unknown): Scalar | { reason: string } {
  if (value === null || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : { reason: 'not-finite' };
  if (typeof value === 'string') return cleanString(value);
  return { reason: 'not-a-scalar' };
}

function optionalString(value: unknown, name: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string') throw new TypeError(`audit event ${name} must be a string or null`);
  return cleanString(value);
}

/**
 * Cuts to {@link MAX_STRING_LENGTH}, then replaces what PostgreSQL cannot store as it was hashed:
 * NUL, and lone surrogates (which UTF-8 encoding would silently turn into U+FFFD).
 */
function cleanString(value: string): string {
  return value
    .slice(0, MAX_STRING_LENGTH)
    .replace(/\0|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
}

function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function sortedRecord(record: Record<string, Scalar>): Record<string, Scalar> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => compareKeys(a, b)));
}

function fromDb(raw: DbRow): AuditRow {
  return {
    id: Number(raw.id),
    atMs: Number(raw.at_ms),
    type: raw.type,
    outcome: raw.outcome,
    userId: raw.user_id,
    sessionHash: raw.session_hash,
    requestId: raw.request_id,
    // A tampered row may hold anything; verify() hashes it as it is and reports the mismatch.
    details: raw.details as Record<string, Scalar>,
    prevHash: raw.prev_hash,
    keyId: raw.key_id,
    hash: raw.hash,
  };
}
