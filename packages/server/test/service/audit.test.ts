/**
 * The service's audit log on PGlite and on PostgreSQL at 127.0.0.1:5432 (in a database of its own,
 * dropped afterwards; an unreachable server fails the run): the keyed chain verifies, tampering is
 * found, the table refuses UPDATE and DELETE, instances sharing one database append one linear
 * chain, and record() stays safe on a request path. Keys, rotation, unkeyed rows and anchors:
 * audit-keys.test.ts.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';

import { KeyRing, type SqlQueryable } from 'gatehouse';
import { AuditLog, MAX_STRING_LENGTH, type AuditEvent, type AuditLogger } from '../../src/service/audit.js';
import { auditChainKeys, GENESIS_HASH, hashAuditRow, type AuditRow } from '../../src/service/audit-chain.js';
import type { Database } from '../../src/service/db.js';
import { pgliteBackend, postgresBackend, RecordingLogger, type Backend } from '../helpers/audit-backends.js';

/** The service's SECRET_KEYS in these tests, and the chain key derived from it. */
const keyRing = new KeyRing([randomBytes(32)]);
const chainKey = auditChainKeys(keyRing)[0] ?? assert.fail('no chain key');

function auditLog(db: Database, logger: AuditLogger = new RecordingLogger()): AuditLog {
  return new AuditLog(db, logger, { keyRing });
}

/** verify()'s answer, with its head checked against the newest row and then left out. */
async function verified(audit: AuditLog): Promise<unknown> {
  const result = await audit.verify();
  if (!result.ok) return result;
  const [newest] = await audit.recent(1);
  assert.deepEqual(result.head, newest ? { id: newest.id, hash: newest.hash } : null, 'head: the newest row');
  return { ok: true, rows: result.rows };
}

/** `db` with the INSERTs whose 1-based numbers are in `failing` throwing inside their transaction. */
function failingInserts(db: Database, failing: ReadonlySet<number>): Database {
  let inserts = 0;
  return {
    kind: db.kind,
    query: (text, params) => db.query(text, params),
    close: () => db.close(),
    transaction: (fn) =>
      db.transaction((tx) => {
        const wrapped: SqlQueryable = {
          query: async (text, params) => {
            if (text.startsWith('INSERT')) {
              inserts += 1;
              if (failing.has(inserts)) throw new Error('disk full');
            }
            return tx.query(text, params);
          },
        };
        return fn(wrapped);
      }),
  };
}

async function count(db: Database): Promise<number> {
  const { rows } = await db.query('SELECT count(*)::int AS n FROM audit_log');
  return Number((rows[0] as { n: number | string }).n);
}

async function ids(db: Database): Promise<number[]> {
  const { rows } = await db.query('SELECT id FROM audit_log ORDER BY id');
  return (rows as Array<{ id: number | string }>).map((row) => Number(row.id));
}

function event(n: number, extra: Partial<AuditEvent> = {}): AuditEvent {
  return { type: 'test.event', outcome: 'success', userId: 'u1', details: { n }, ...extra };
}

async function appendMany(audit: AuditLog, n: number): Promise<AuditRow[]> {
  const rows: AuditRow[] = [];
  for (let i = 1; i <= n; i += 1) rows.push(await audit.append(event(i)));
  return rows;
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i + 1);

for (const [name, makeBackend] of [
  ['PGlite', pgliteBackend],
  ['PostgreSQL', postgresBackend],
] as const) {
  describe(`the audit log on ${name}`, { timeout: 60_000 }, () => {
    let backend: Backend;

    before(async () => {
      backend = await makeBackend();
    });

    after(async () => {
      await backend.cleanup();
    });

    it('chains appends from the genesis hash, verifies them, and lists the newest first', async () => {
      const { db } = await backend.fresh();
      const audit = auditLog(db);
      assert.deepEqual(await verified(audit), { ok: true, rows: 0 });
      const rows = await appendMany(audit, 3);
      assert.deepEqual(
        rows.map((row) => row.id),
        [1, 2, 3],
      );
      const [one, two, three] = rows;
      assert.ok(one && two && three);
      assert.equal(one.prevHash, GENESIS_HASH);
      assert.equal(two.prevHash, one.hash);
      assert.equal(three.prevHash, two.hash);
      for (const row of rows) {
        assert.match(row.hash, /^[0-9a-f]{64}$/);
        assert.equal(row.keyId, chainKey.id, 'each row names the key of its hash');
        assert.match(row.keyId, /^[0-9a-f]{16}$/);
        const { hash, ...fields } = row;
        assert.equal(hashAuditRow(fields, chainKey.key), hash, 'an HMAC under the chain key');
      }
      assert.deepEqual(await audit.recent(2), [three, two], 'what was stored is what append returned');
      assert.deepEqual(await audit.recent(0), []);
      await assert.rejects(audit.recent(-1), RangeError);
      assert.deepEqual(await verified(audit), { ok: true, rows: 3 });
      // Another instance (a restarted service) continues the same chain.
      const next = await auditLog(db).append(event(4));
      assert.equal(next.id, 4);
      assert.equal(next.prevHash, three.hash);
      assert.deepEqual(await verified(audit), { ok: true, rows: 4 });
    });

    it('refuses UPDATE and DELETE on the table', async () => {
      const { db } = await backend.fresh();
      const audit = auditLog(db);
      await appendMany(audit, 2);
      await assert.rejects(
        db.query(`UPDATE audit_log SET details = '{"n": 9}' WHERE id = 1`),
        /audit_log is append-only/,
      );
      await assert.rejects(db.query('DELETE FROM audit_log WHERE id = 2'), /audit_log is append-only/);
      await assert.rejects(db.query('DELETE FROM audit_log'), /audit_log is append-only/);
      assert.deepEqual(await verified(audit), { ok: true, rows: 2 });
    });

    it('finds an edited row by its hash, even rehashed without the key, and by the next link when rehashed with it', async () => {
      const { db } = await backend.fresh();
      const audit = auditLog(db);
      await appendMany(audit, 5);
      await db.query('ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update');
      await db.query(`UPDATE audit_log SET details = jsonb_set(details, '{n}', '99') WHERE id = 3`);
      assert.deepEqual(await verified(audit), {
        ok: false,
        rows: 2,
        firstBadId: 3,
        problem: 'hash-mismatch',
      });

      const stored = (await audit.recent(5)).find((row) => row.id === 3);
      assert.ok(stored);
      assert.deepEqual(stored.details, { n: 99 });
      const { hash: _old, ...fields } = stored;
      // Someone with DATABASE_URL but not SECRET_KEYS: a plain SHA-256, or an HMAC under a key
      // of their own, is no hash of the chain.
      const canonical = JSON.stringify(Object.values(fields));
      for (const forged of [
        createHash('sha256').update(canonical).digest('hex'),
        hashAuditRow(fields, randomBytes(32)),
      ]) {
        await db.query('UPDATE audit_log SET hash = $1 WHERE id = 3', [forged]);
        assert.deepEqual(await verified(audit), {
          ok: false,
          rows: 2,
          firstBadId: 3,
          problem: 'hash-mismatch',
        });
      }
      // Someone holding the key can rehash the row, but not the next row's link to the old hash.
      await db.query('UPDATE audit_log SET hash = $1 WHERE id = 3', [hashAuditRow(fields, chainKey.key)]);
      assert.deepEqual(await verified(audit), { ok: false, rows: 3, firstBadId: 4, problem: 'chain-broken' });
    });

    it('finds a deleted row, in the middle and at the start', async () => {
      const { db } = await backend.fresh();
      const audit = auditLog(db);
      await appendMany(audit, 5);
      await db.query('ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update');
      await db.query('DELETE FROM audit_log WHERE id = 3');
      assert.deepEqual(await verified(audit), { ok: false, rows: 2, firstBadId: 4, problem: 'gap' });
      await db.query('DELETE FROM audit_log WHERE id = 1');
      assert.deepEqual(await verified(audit), { ok: false, rows: 0, firstBadId: 2, problem: 'gap' });
    });

    it('verifies page by page past the first thousand rows, and finds tampering there', async () => {
      const { db } = await backend.fresh();
      // 2500 valid rows written directly (appending them one by one would only be slower).
      let prevHash = GENESIS_HASH;
      for (let start = 1; start <= 2500; start += 250) {
        const values: string[] = [];
        const params: unknown[] = [];
        for (let id = start; id < start + 250; id += 1) {
          const fields = {
            id,
            atMs: 1_700_000_000_000 + id,
            type: 'bulk',
            outcome: 'info',
            userId: null,
            sessionHash: null,
            requestId: null,
            details: { id },
            prevHash,
            keyId: chainKey.id,
          };
          const hash = hashAuditRow(fields, chainKey.key);
          const p = params.length;
          values.push(
            `($${p + 1}, $${p + 2}, $${p + 3}, $${p + 4}, NULL, NULL, NULL, $${p + 5}::jsonb, $${p + 6}, $${p + 7}, $${p + 8})`,
          );
          params.push(
            id,
            fields.atMs,
            fields.type,
            fields.outcome,
            JSON.stringify(fields.details),
            prevHash,
            chainKey.id,
            hash,
          );
          prevHash = hash;
        }
        await db.query(
          `INSERT INTO audit_log (id, at_ms, type, outcome, user_id, session_hash, request_id, details, prev_hash, key_id, hash) VALUES ${values.join(', ')}`,
          params,
        );
      }
      const audit = auditLog(db);
      const last = await audit.append(event(1));
      assert.equal(last.id, 2501);
      assert.equal(last.prevHash, prevHash);
      assert.deepEqual(await verified(audit), { ok: true, rows: 2501 });
      await db.query('ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update');
      await db.query(`UPDATE audit_log SET outcome = 'failure' WHERE id = 2300`);
      assert.deepEqual(await verified(audit), {
        ok: false,
        rows: 2299,
        firstBadId: 2300,
        problem: 'hash-mismatch',
      });
    });

    it('keeps one gap-free chain when instances append at once', async () => {
      const { db } = await backend.fresh();
      const first = auditLog(db);
      const second = auditLog(db);
      await Promise.all([
        ...range(50).map((n) => first.append(event(n, { type: 'first' }))),
        ...range(50).map((n) => second.append(event(n, { type: 'second' }))),
      ]);
      assert.deepEqual(await ids(db), range(100));
      assert.deepEqual(await verified(first), { ok: true, rows: 100 });
    });

    it('writes the log line at once, before the row', async () => {
      const { db } = await backend.fresh();
      const logger = new RecordingLogger();
      const audit = auditLog(db, logger);
      const before = Date.now();
      audit.record({
        type: 'login',
        outcome: 'failure',
        userId: 'u7',
        sessionHash: 'ab'.repeat(32),
        requestId: 'req-1',
        details: { reason: 'bad-password', attempt: 3, locked: false, ip: null },
      });
      assert.equal(logger.calls.length, 1, 'synchronously, from record()');
      const [call] = logger.calls;
      assert.ok(call);
      assert.equal(call.level, 'info');
      assert.equal(call.msg, 'audit');
      const { audit: line } = call.obj as { audit: Record<string, unknown> };
      const { atMs, ...rest } = line;
      assert.deepEqual(rest, {
        type: 'login',
        outcome: 'failure',
        userId: 'u7',
        sessionHash: 'ab'.repeat(32),
        requestId: 'req-1',
        details: { attempt: 3, ip: null, locked: false, reason: 'bad-password' },
      });
      assert.ok(typeof atMs === 'number' && atMs >= before && atMs <= Date.now());
      await audit.flush();
      const [row] = await audit.recent(1);
      assert.ok(row);
      assert.equal(row.atMs, atMs, 'the row carries the time of the event');
      assert.deepEqual(row.details, rest.details);
    });

    it('record() never throws; flush() waits for every queued append; a failed append stops nothing', async () => {
      const { db } = await backend.fresh();
      const logger = new RecordingLogger();
      const audit = auditLog(failingInserts(db, new Set([3])), logger);
      const throwing = {
        get n(): number {
          throw new Error('getter');
        },
      };
      assert.doesNotThrow(() => {
        for (const n of range(10)) audit.record(event(n));
        audit.record({ type: '', outcome: 'info' });
        audit.record({ type: 'x', outcome: 'maybe' } as unknown as AuditEvent);
        audit.record({ type: 'x', outcome: 'info', userId: 42 } as unknown as AuditEvent);
        audit.record({ type: 'x', outcome: 'info', details: throwing });
        audit.record(null as unknown as AuditEvent);
      });
      assert.equal(await count(db), 0, 'nothing waited for the database');
      await audit.flush();
      assert.deepEqual(await ids(db), range(9), 'the failed third append left no hole');
      assert.deepEqual(await verified(audit), { ok: true, rows: 9 });
      const errors = logger.at('error');
      assert.equal(errors.filter((call) => call.msg === 'audit event refused').length, 5);
      const failed = errors.filter((call) => call.msg === 'audit append failed');
      assert.equal(failed.length, 1);
      assert.deepEqual((failed[0]?.obj as { audit: { details: unknown } }).audit.details, { n: 3 });

      // flush() also waits for appends queued while it waits.
      audit.record(event(11));
      const flushed = audit.flush();
      audit.record(event(12));
      await flushed;
      assert.equal(await count(db), 11);

      // A logger that throws costs neither the row nor record()'s promise.
      const broken: AuditLogger = {
        info: () => {
          throw new Error('log down');
        },
        warn: () => {
          throw new Error('log down');
        },
        error: () => {
          throw new Error('log down');
        },
      };
      const quiet = auditLog(failingInserts(db, new Set([1])), broken);
      assert.doesNotThrow(() => {
        quiet.record(event(13, { details: { password: 'x' } }));
        quiet.record(event(14));
        quiet.record({ type: '', outcome: 'info' });
      });
      await quiet.flush();
      assert.equal(await count(db), 12);
      assert.deepEqual(await verified(audit), { ok: true, rows: 12 });
    });

    it('drops secret-looking keys and non-scalars, caps strings, and stores what PostgreSQL cannot as hashed', async () => {
      const { db } = await backend.fresh();
      const logger = new RecordingLogger();
      const audit = auditLog(db, logger);
      const secrets = ['hunter2-pw', 'tok-abc', 'sid=s3cr3t', 'Bearer xyz', 'shh-secret', 'key-123', 'pk-9'];
      const row = await audit.append({
        type: 'form.submit',
        outcome: 'success',
        details: {
          password: secrets[0] ?? '',
          apiToken: secrets[1] ?? '',
          'Set-Cookie': secrets[2] ?? '',
          Authorization: secrets[3] ?? '',
          client_secret: secrets[4] ?? '',
          api_key: secrets[5] ?? '',
          privateKey: secrets[6] ?? '',
          formId: 'f-1',
          fields: 12,
          long: 'a'.repeat(500),
          odd: 'nul\u0000 and lone \ud800 surrogate',
          'bad key\n': 'x',
          ratio: Number.NaN,
          nested: { answers: 'PHI' } as unknown as string,
          list: [1, 2] as unknown as number,
          skipped: undefined as unknown as null,
        },
      });
      assert.deepEqual(Object.keys(row.details), ['fields', 'formId', 'long', 'odd']);
      assert.equal(row.details.long, 'a'.repeat(MAX_STRING_LENGTH));
      assert.equal(row.details.odd, 'nul\uFFFD and lone \uFFFD surrogate');
      assert.deepEqual((await audit.recent(1))[0], row);
      assert.deepEqual(await verified(audit), { ok: true, rows: 1 });

      const warnings = logger.at('warn');
      assert.equal(warnings.length, 1);
      const { dropped } = (
        warnings[0]?.obj as { audit: { dropped: Array<{ key?: string; reason: string }> } }
      ).audit;
      assert.deepEqual(dropped, [
        { key: 'password', reason: 'secret-key' },
        { key: 'apiToken', reason: 'secret-key' },
        { key: 'Set-Cookie', reason: 'secret-key' },
        { key: 'Authorization', reason: 'secret-key' },
        { key: 'client_secret', reason: 'secret-key' },
        { key: 'api_key', reason: 'secret-key' },
        { key: 'privateKey', reason: 'secret-key' },
        { reason: 'bad-key' },
        { key: 'ratio', reason: 'not-finite' },
        { key: 'nested', reason: 'not-a-scalar' },
        { key: 'list', reason: 'not-a-scalar' },
      ]);
      // No secret and no dropped value reached the log or the table.
      const logged = JSON.stringify(logger.calls);
      const { rows } = await db.query('SELECT details::text AS d FROM audit_log');
      const stored = JSON.stringify(rows);
      for (const text of [...secrets, 'PHI']) {
        assert.ok(!logged.includes(text), `log holds ${text}`);
        assert.ok(!stored.includes(text), `table holds ${text}`);
      }
    });
  });
}

describe('the audit log on PostgreSQL shared by two instances', { timeout: 60_000 }, () => {
  let backend: Backend;

  before(async () => {
    backend = await postgresBackend();
  });

  after(async () => {
    await backend.cleanup();
  });

  it('appends one gap-free chain from two pools at once', async () => {
    const { db: one, reopen } = await backend.fresh();
    const two = await reopen();
    // Two instances, each with two loggers, so transactions from both pools contend for the lock.
    const logs = [one, one, two, two].map((db) => auditLog(db));
    await Promise.all(
      logs.flatMap((audit, instance) =>
        range(25).map((n) => audit.append(event(n, { type: `instance-${instance}` }))),
      ),
    );
    // And fire-and-forget from both at once.
    for (const n of range(10)) for (const audit of logs) audit.record(event(n, { type: 'recorded' }));
    await Promise.all(logs.map((audit) => audit.flush()));

    assert.deepEqual(await ids(one), range(140));
    assert.deepEqual(await verified(logs[0] ?? assert.fail()), { ok: true, rows: 140 });
    assert.deepEqual(await verified(logs[3] ?? assert.fail()), { ok: true, rows: 140 });
    const { rows } = await two.query(
      'SELECT type, count(*)::int AS n FROM audit_log GROUP BY type ORDER BY type',
    );
    assert.deepEqual(rows, [
      { type: 'instance-0', n: 25 },
      { type: 'instance-1', n: 25 },
      { type: 'instance-2', n: 25 },
      { type: 'instance-3', n: 25 },
      { type: 'recorded', n: 40 },
    ]);
  });
});
