/**
 * The audit chain's keys and anchors on PGlite and PostgreSQL: after a SECRET_KEYS rotation old
 * rows still verify and new rows use the newest key; a row whose key left the ring is named; rows
 * of the unkeyed chain (a database from the version before, or a row downgraded by hand) are
 * refused; and the log gets `audit anchor` lines that `verify` checks the table against.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';

import { KeyRing } from 'gatehouse';
import { waitFor } from '../../../gatehouse/test/harness/topologies.js';
import { AuditLog, type AuditEvent } from '../../src/service/audit.js';
import { auditChainKeys, GENESIS_HASH, type AuditRow } from '../../src/service/audit-chain.js';
import { MIGRATIONS, migrate, type Database } from '../../src/service/db.js';
import { pgliteBackend, postgresBackend, RecordingLogger, type Backend } from '../helpers/audit-backends.js';

const oldSecret = randomBytes(32);
const newSecret = randomBytes(32);
const beforeRotation = new KeyRing([oldSecret]);
const afterRotation = new KeyRing([newSecret, oldSecret]);
const [newKey, oldKey] = auditChainKeys(afterRotation);

function event(n: number): AuditEvent {
  return { type: 'test.event', outcome: 'success', userId: 'u1', details: { n } };
}

async function appendMany(audit: AuditLog, n: number): Promise<AuditRow[]> {
  const rows: AuditRow[] = [];
  for (let i = 1; i <= n; i += 1) rows.push(await audit.append(event(i)));
  return rows;
}

/** The anchors logged so far, in order. */
function anchors(logger: RecordingLogger): unknown[] {
  return logger.calls
    .filter((call) => call.msg === 'audit anchor')
    .map((call) => {
      assert.equal(call.level, 'info');
      return (call.obj as { auditAnchor: unknown }).auditAnchor;
    });
}

for (const [name, makeBackend] of [
  ['PGlite', pgliteBackend],
  ['PostgreSQL', postgresBackend],
] as const) {
  describe(`the audit chain's keys and anchors on ${name}`, { timeout: 60_000 }, () => {
    let backend: Backend;

    before(async () => {
      backend = await makeBackend();
    });

    after(async () => {
      await backend.cleanup();
    });

    it('verifies old rows after a rotation, hashes new ones with the newest key, and names a row whose key left', async () => {
      const { db } = await backend.fresh();
      assert.ok(newKey && oldKey);
      assert.notEqual(newKey.id, oldKey.id);
      const before = await appendMany(
        new AuditLog(db, new RecordingLogger(), { keyRing: beforeRotation }),
        3,
      );
      assert.deepEqual(
        before.map((row) => row.keyId),
        [oldKey.id, oldKey.id, oldKey.id],
      );

      // SECRET_KEYS=<new>,<old>: every instance restarted with the new list.
      const rotated = new AuditLog(db, new RecordingLogger(), { keyRing: afterRotation });
      const after = await appendMany(rotated, 2);
      assert.deepEqual(
        after.map((row) => row.keyId),
        [newKey.id, newKey.id],
      );
      assert.equal(after[0]?.prevHash, before[2]?.hash, 'the chain goes on across the rotation');
      const head = { id: 5, hash: after[1]?.hash };
      assert.deepEqual(await rotated.verify(), { ok: true, rows: 5, head });

      // Only the old key: the new rows cannot be checked. Only the new key: the old rows cannot.
      const oldOnly = new AuditLog(db, new RecordingLogger(), { keyRing: beforeRotation });
      assert.deepEqual(await oldOnly.verify(), { ok: false, rows: 3, firstBadId: 4, problem: 'unknown-key' });
      const newOnly = new AuditLog(db, new RecordingLogger(), { keyRing: new KeyRing([newSecret]) });
      assert.deepEqual(await newOnly.verify(), { ok: false, rows: 0, firstBadId: 1, problem: 'unknown-key' });

      // A row relabelled with the other key's id does not verify under that key either.
      await db.query('ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update');
      await db.query('UPDATE audit_log SET key_id = $1 WHERE id = 2', [newKey.id]);
      assert.deepEqual(await rotated.verify(), {
        ok: false,
        rows: 1,
        firstBadId: 2,
        problem: 'hash-mismatch',
      });
    });

    it('refuses a row without a key id, at any place in the chain, and the table takes no new one', async () => {
      const { db } = await backend.fresh();
      const audit = new AuditLog(db, new RecordingLogger(), { keyRing: afterRotation });
      await appendMany(audit, 3);
      await assert.rejects(
        db.query(
          `INSERT INTO audit_log (id, at_ms, type, outcome, details, prev_hash, hash) VALUES (4, 0, 'x', 'info', '{}', $1, $1)`,
          [GENESIS_HASH],
        ),
        /audit_log_keyed/,
      );
      // A superuser downgrades row 2 to the unkeyed form (a plain SHA-256 anyone can compute).
      await db.query('ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update');
      await db.query('ALTER TABLE audit_log DROP CONSTRAINT audit_log_keyed');
      const [row] = (await audit.recent(3)).filter((stored) => stored.id === 2);
      assert.ok(row);
      await db.query('UPDATE audit_log SET key_id = NULL, hash = $1 WHERE id = 2', [legacyHash(row)]);
      assert.deepEqual(await audit.verify(), { ok: false, rows: 1, firstBadId: 2, problem: 'unkeyed' });
    });

    it('logs the newest row as an anchor once per interval when rows were appended, and on close', async () => {
      const { db } = await backend.fresh();
      const logger = new RecordingLogger();
      const audit = new AuditLog(db, logger, { keyRing: afterRotation, anchorIntervalMs: 100 });
      assert.throws(
        () => new AuditLog(db, logger, { keyRing: afterRotation, anchorIntervalMs: 0 }),
        RangeError,
      );
      const first = await appendMany(audit, 3);
      assert.deepEqual(anchors(logger), [], 'not at once: at the end of the interval');
      await waitFor('the first anchor', () => anchors(logger).length === 1, 5000);
      assert.deepEqual(anchors(logger), [{ id: 3, hash: first[2]?.hash, keyId: newKey?.id }]);
      await sleep(400);
      assert.equal(anchors(logger).length, 1, 'nothing appended, nothing anchored');

      audit.record(event(4));
      audit.record(event(5));
      await waitFor('the second anchor', () => anchors(logger).length === 2, 5000);
      const [fifth] = await audit.recent(1);
      assert.deepEqual(anchors(logger)[1], { id: 5, hash: fifth?.hash, keyId: newKey?.id });

      // Closing waits for the queued append and anchors it without waiting for the interval.
      audit.record(event(6));
      await audit.close();
      const [sixth] = await audit.recent(1);
      assert.equal(sixth?.id, 6);
      assert.deepEqual(anchors(logger)[2], { id: 6, hash: sixth.hash, keyId: newKey?.id });
      await audit.close();
      assert.equal(anchors(logger).length, 3, 'a second close anchors nothing new');

      // Each anchor checks the table.
      const anchored = { id: 6, hash: sixth.hash };
      assert.deepEqual(await audit.verify({ anchor: anchored }), { ok: true, rows: 6, head: anchored });
      assert.deepEqual(await audit.verify({ anchor: { id: 5, hash: first[0]?.hash ?? '' } }), {
        ok: false,
        rows: 4,
        firstBadId: 5,
        problem: 'anchor-mismatch',
      });
      // The newest rows removed: the rest still chains, but the anchor names a row that is gone.
      await db.query('ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update');
      await db.query('DELETE FROM audit_log WHERE id >= 5');
      assert.deepEqual(await audit.verify(), {
        ok: true,
        rows: 4,
        head: { id: 4, hash: (await audit.recent(1))[0]?.hash },
      });
      assert.deepEqual(await audit.verify({ anchor: anchored }), {
        ok: false,
        rows: 4,
        firstBadId: 6,
        problem: 'anchor-missing',
      });
      // And two rows appended in their place (by someone holding the key) are not the anchored ones.
      const again = new AuditLog(db, new RecordingLogger(), { keyRing: afterRotation });
      await appendMany(again, 2);
      assert.deepEqual(await again.verify({ anchor: anchored }), {
        ok: false,
        rows: 5,
        firstBadId: 6,
        problem: 'anchor-mismatch',
      });
    });
  });
}

/** The hash of the unkeyed chain of the version before: SHA-256 of the row's fields, hex. */
function legacyHash(row: Omit<AuditRow, 'hash' | 'keyId'>): string {
  const details = Object.entries(row.details).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const canonical = JSON.stringify([
    row.id,
    row.atMs,
    row.type,
    row.outcome,
    row.userId,
    row.sessionHash,
    row.requestId,
    details,
    row.prevHash,
  ]);
  return createHash('sha256').update(canonical, 'utf8').digest('hex');
}

describe('a PostgreSQL database of the unkeyed chain, migrated', { timeout: 60_000 }, () => {
  let backend: Awaited<ReturnType<typeof postgresBackend>>;

  before(async () => {
    backend = await postgresBackend();
  });

  after(async () => {
    await backend.cleanup();
  });

  /** The schema as the version before left it: the first two migrations, and rows chained unkeyed. */
  async function unkeyedDatabase(rows: number): Promise<Database> {
    const { db } = await backend.empty();
    await db.query(
      'CREATE TABLE schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())',
    );
    for (const [index, sql] of MIGRATIONS.slice(0, 2).entries()) {
      await db.query(sql); // several statements: PostgreSQL's simple query protocol takes them
      await db.query('INSERT INTO schema_migrations (version) VALUES ($1)', [index + 1]);
    }
    let prevHash = GENESIS_HASH;
    for (let id = 1; id <= rows; id += 1) {
      const fields = {
        id,
        atMs: 1_700_000_000_000 + id,
        type: 'login',
        outcome: 'success',
        userId: 'u1',
        sessionHash: null,
        requestId: null,
        details: {},
        prevHash,
      };
      const hash = legacyHash(fields);
      await db.query(
        `INSERT INTO audit_log (id, at_ms, type, outcome, user_id, details, prev_hash, hash) VALUES ($1, $2, 'login', 'success', 'u1', '{}', $3, $4)`,
        [id, fields.atMs, prevHash, hash],
      );
      prevHash = hash;
    }
    return db;
  }

  it('keeps the unkeyed rows, chains new keyed rows after them, and refuses them at row 1', async () => {
    const db = await unkeyedDatabase(3);
    assert.ok((await migrate(db)) >= 1, 'the keyed chain migration applies over unkeyed rows');
    const audit = new AuditLog(db, new RecordingLogger(), { keyRing: afterRotation });
    const appended = await audit.append(event(4));
    assert.equal(appended.id, 4);
    const { rows } = await db.query('SELECT hash FROM audit_log WHERE id = 3');
    assert.equal(appended.prevHash, (rows[0] as { hash: string }).hash);
    assert.equal(appended.keyId, newKey?.id);
    assert.deepEqual(await audit.verify(), { ok: false, rows: 0, firstBadId: 1, problem: 'unkeyed' });
  });
});
