/**
 * `gatehouse audit verify` as an operator runs it, against the database a real service wrote:
 * PostgreSQL (DATABASE_URL, SECRET_KEYS) and the embedded PGlite with the development key in
 * DATA_DIR. A clean chain exits 0 with its row count; a row altered in SQL by the superuser
 * (past the append-only trigger) exits 1 naming that row; the anchor the service logged checks
 * the table; the wrong keys, a rotation, and what the command cannot do (no keys, no database,
 * the embedded database in use) each get one clear line; no secret is ever printed.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import pg from 'pg';

import { auditCommand } from '../../src/cli/audit.js';
import { loadConfig } from '../../src/config.js';
import { createServiceLogger } from '../../src/logger.js';
import { createService } from '../../src/service/app.js';
import { loadOrCreateDevKeys } from '../../src/service/dev-keys.js';
import { Client, freshEmail } from '../helpers/client.js';
import { createTestDatabase, startService } from '../helpers/start-service.js';
import { runCaptured, runProgram, type Outcome } from '../helpers/command-outcome.js';

function audit(argv: string[], env: Record<string, string | undefined>): Promise<Outcome> {
  return runCaptured(auditCommand, argv, env);
}

/** Some security events: sign-ups, sign-ins (one failed), a sign-out. */
async function someEvents(base: string): Promise<void> {
  for (let i = 0; i < 2; i += 1) {
    const client = new Client(base);
    const email = freshEmail();
    await client.signUp(email);
    await client.signIn(email);
    assert.equal(
      (await new Client(base).post('/api/v1/auth/signin', { email, password: 'wrong password!' })).status,
      401,
    );
    assert.equal((await client.post('/api/v1/auth/signout')).status, 204);
  }
}

function assertNoSecret(outcome: Outcome, secrets: readonly string[]): void {
  for (const secret of secrets) {
    assert.ok(!outcome.stdout.includes(secret) && !outcome.stderr.includes(secret), 'a secret was printed');
  }
}

describe('gatehouse audit verify on PostgreSQL', { timeout: 120_000 }, () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  const secret = randomBytes(32).toString('hex');
  const logLines: string[] = [];
  let rows = 0;

  before(async () => {
    database = await createTestDatabase();
    const logger = createServiceLogger('info', {
      write: (line: string) => {
        logLines.push(line);
      },
    });
    const running = await startService({ DATABASE_URL: database.url, SECRET_KEYS: secret }, { logger });
    await someEvents(running.base);
    await running.close();
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    const counted = await client.query('SELECT count(*)::int AS n FROM audit_log');
    rows = (counted.rows[0] as { n: number }).n;
    await client.end();
    assert.ok(rows >= 10, `the service wrote ${String(rows)} rows`);
  });

  after(async () => {
    await database.drop();
  });

  it('exits 0 with the number of rows, and checks the anchor the service logged on close', async () => {
    const env = { DATABASE_URL: database.url, SECRET_KEYS: secret };
    const clean = await audit(['verify'], env);
    assert.equal(clean.code, 0, clean.stderr);
    assert.match(
      clean.stdout,
      new RegExp(
        `^audit chain verified: ${String(rows)} rows; newest row ${String(rows)}, hash [0-9a-f]{64}\\n$`,
      ),
    );
    assert.equal(clean.stderr, '');

    const anchors = logLines
      .map(
        (line) =>
          JSON.parse(line) as { msg: string; level: number; auditAnchor?: { id: number; hash: string } },
      )
      .filter((record) => record.msg === 'audit anchor');
    const last = anchors.at(-1)?.auditAnchor;
    assert.ok(last, 'the service logged an anchor when it closed');
    assert.equal(anchors.at(-1)?.level, 30, 'at info level');
    assert.equal(last.id, rows, 'of its newest row');
    const anchored = await audit(['verify', '--anchor', `${String(last.id)}:${last.hash}`], env);
    assert.equal(anchored.code, 0, anchored.stderr);
    assert.match(anchored.stdout, new RegExp(`anchor ${String(rows)} found`));
    const beyond = await audit(['verify', '--anchor', `${String(rows + 5)}:${last.hash}`], env);
    assert.equal(beyond.code, 1);
    assert.match(
      beyond.stderr,
      new RegExp(`^gatehouse audit: row ${String(rows + 5)} does not verify \\(anchor-missing\\)`),
    );

    // Rotated keys (a new one first) still verify the rows of the old one; other keys do not.
    const rotated = await audit(['verify'], {
      ...env,
      SECRET_KEYS: `${randomBytes(32).toString('hex')},${secret}`,
    });
    assert.equal(rotated.code, 0, rotated.stderr);
    const wrong = await audit(['verify'], { ...env, SECRET_KEYS: randomBytes(32).toString('hex') });
    assert.equal(wrong.code, 1);
    assert.match(
      wrong.stderr,
      /^gatehouse audit: row 1 does not verify \(unknown-key\): its key is not in SECRET_KEYS/,
    );
    for (const outcome of [clean, anchored, beyond, rotated, wrong]) assertNoSecret(outcome, [secret]);
  });

  it('exits 1 naming the row a superuser altered in SQL past the append-only trigger', async () => {
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      await assert.rejects(
        client.query(`UPDATE audit_log SET outcome = 'success' WHERE id = 3`),
        /append-only/,
      );
      // Triggers off for this connection only, as a superuser may.
      await client.query('SET session_replication_role = replica');
      await client.query(`UPDATE audit_log SET user_id = 'someone-else' WHERE id = 3`);
    } finally {
      await client.end();
    }
    const env = { DATABASE_URL: database.url, SECRET_KEYS: secret };
    const tampered = await audit(['verify'], env);
    assert.equal(tampered.code, 1);
    assert.equal(tampered.stdout, '');
    assert.equal(
      tampered.stderr,
      'gatehouse audit: row 3 does not verify (hash-mismatch): its hash does not match its fields (the row was changed); 2 rows before it verified\n',
    );
    // The program itself, dispatched from main.ts, says the same with the same exit status.
    const program = await runProgram(['audit', 'verify'], env);
    assert.equal(program.code, 1, program.stderr);
    assert.match(program.stderr, /^gatehouse audit: row 3 does not verify \(hash-mismatch\)/);
    assertNoSecret(tampered, [secret]);
    assertNoSecret(program, [secret]);
  });

  it('answers usage and what it cannot do with exit status 2 and one line', async () => {
    const help = await runProgram(['--help'], {});
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^ {2}audit verify {7}check the whole audit chain/m);
    const verifyHelp = await audit(['verify', '--help'], {});
    assert.equal(verifyHelp.code, 0);
    assert.match(verifyHelp.stdout, /--anchor <id>:<hash>/);

    const env = { DATABASE_URL: database.url, SECRET_KEYS: secret };
    for (const [argv, message] of [
      [[], /a command is required/],
      [['check'], /unknown command "check"/],
      [['verify', 'extra'], /Unexpected argument 'extra'/i],
      [['verify', '--anchor', '3'], /--anchor must be <id>:<hash>/],
      [['verify', '--anchor', `0:${'a'.repeat(64)}`], /--anchor must be <id>:<hash>/],
    ] as const) {
      const outcome = await audit([...argv], env);
      assert.equal(outcome.code, 2, argv.join(' '));
      assert.match(outcome.stderr, message);
    }
    const dataDir = mkdtempSync(join(tmpdir(), 'gh-cli-audit-'));
    try {
      const noKeys = await audit(['verify'], { DATABASE_URL: database.url, DATA_DIR: dataDir });
      assert.equal(noKeys.code, 2);
      assert.match(noKeys.stderr, /no SECRET_KEYS and no development key in DATA_DIR/);
      const noDatabase = await audit(['verify'], { SECRET_KEYS: secret, DATA_DIR: dataDir });
      assert.equal(noDatabase.code, 2);
      assert.match(noDatabase.stderr, /DATA_DIR has no embedded database/);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
    const password = 'not-the-real-password';
    const url = new URL(database.url);
    url.username = 'nobody';
    url.password = password;
    url.port = '1';
    const unreachable = await audit(['verify'], { DATABASE_URL: url.toString(), SECRET_KEYS: secret });
    assert.equal(unreachable.code, 2);
    assert.match(
      unreachable.stderr,
      /^gatehouse audit: cannot use the database at postgres:\/\/\*\*\*@127\.0\.0\.1:1\//,
    );
    assertNoSecret(unreachable, [password, secret]);
  });
});

describe(
  'gatehouse audit verify on the embedded database with the development key',
  { timeout: 120_000 },
  () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'gh-cli-audit-pglite-'));

    after(() => {
      rmSync(dataDir, { recursive: true, force: true });
    });

    it('refuses while the service has the database open, and verifies it once the service stopped', async () => {
      const env = {
        HOST: '127.0.0.1',
        PORT: '3000',
        COOKIE_SECURE: 'false',
        LOG_LEVEL: 'silent',
        DATA_DIR: dataDir,
        TRUST_PROXY: '1',
      };
      const dev = loadOrCreateDevKeys(dataDir);
      const service = await createService({ ...loadConfig(env), port: 0 }, { secretKeys: dev.keys });
      try {
        const base = await service.app.listen({ host: '127.0.0.1', port: 0 });
        await someEvents(base);
        await service.context.audit.flush();
        const busy = await audit(['verify'], { DATA_DIR: dataDir });
        assert.equal(busy.code, 2);
        assert.match(busy.stderr, /is open in another process \(the service\?\)/);
      } finally {
        await service.close();
      }
      const clean = await audit(['verify'], { DATA_DIR: dataDir });
      assert.equal(clean.code, 0, clean.stderr);
      assert.match(clean.stdout, /^audit chain verified: \d{2,} rows; newest row \d+, hash [0-9a-f]{64}\n$/);
      assertNoSecret(
        clean,
        dev.keys.map((key) => key.toString('hex')),
      );
    });
  },
);
