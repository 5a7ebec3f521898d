/**
 * `gatehouse sessions` as an operator runs it, in-process against a real redis-server: it lists a
 * user's sessions without ever printing a token, ends one session (every instance hears of it) or
 * all of them, refuses what it cannot do (memory store, no keys, Redis unreachable) with one
 * clear line, and in durable mode tombstones the SQL copy so a session never comes back from SQL.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { sessionsCommand } from '../../src/cli/sessions.js';
import { createGatehouse, type Gatehouse } from 'gatehouse';
import { SqlSessionRepository, type SessionEndedEvent } from 'gatehouse';
import { migrate, openDatabase } from '../../src/service/db.js';
import {
  startStandalone,
  uniquePrefix,
  waitFor,
  type Standalone,
} from '../../../gatehouse/test/harness/topologies.js';
import { runCaptured, type Outcome } from '../helpers/command-outcome.js';

function cli(argv: string[], env: Record<string, string | undefined>): Promise<Outcome> {
  return runCaptured(sessionsCommand, argv, env);
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'gh-cli-sessions-'));
}

/** A session's handle as `sessions list` prints it, for a token the test holds. */
interface Created {
  readonly token: string;
  readonly handle: string;
}

describe('gatehouse sessions', { timeout: 120_000 }, () => {
  let redis: Standalone;
  let prefix: string;
  let secret: string;
  /** The instance that signs users in (the "service"). */
  let gh: Gatehouse;
  /** Another instance, listening for ended sessions as the service's event streams do. */
  let watcher: Gatehouse;
  const ended: SessionEndedEvent[] = [];
  let env: Record<string, string>;
  const dirs: string[] = [];

  before(async () => {
    redis = await startStandalone();
    prefix = uniquePrefix();
    secret = randomBytes(32).toString('hex');
    const options = {
      redis: redis.connection,
      secretKeys: [secret],
      origin: 'http://localhost',
      keyPrefix: prefix,
    };
    gh = await createGatehouse(options);
    watcher = await createGatehouse(options);
    await watcher.sessions.onEnded((event) => {
      ended.push(event);
    });
    env = {
      REDIS_URL: `redis://127.0.0.1:${String(redis.server.port)}`,
      REDIS_KEY_PREFIX: prefix,
      SECRET_KEYS: secret,
      SESSION_DURABLE: 'false',
    };
  });

  after(async () => {
    await gh.close();
    await watcher.close();
    await redis.destroy();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  async function signIn(userId: string, ip: string | null, userAgent: string | null): Promise<Created> {
    const { token, session } = await gh.sessions.create({ userId, ip, userAgent });
    return { token, handle: session.handle };
  }

  function assertNoTokens(outcome: Outcome, sessions: readonly Created[]): void {
    const text = outcome.stdout + outcome.stderr;
    for (const { token } of sessions) {
      assert.ok(!text.includes(token), 'no token is printed');
      // The secret part alone (the token is the pseudonym followed by it) is not printed either.
      assert.ok(!text.includes(token.slice(16)), 'no token part is printed');
    }
  }

  /**
   * The store refuses the session at once, saying why; the instance that validated it before
   * drops it from its local cache as soon as the announcement arrives.
   */
  async function assertRevoked(token: string): Promise<void> {
    assert.deepEqual(await watcher.sessions.validateWithReason(token), { session: null, reason: 'revoked' });
    await waitFor(
      'the signing-in instance to refuse it',
      async () => (await gh.sessions.validate(token)) === null,
    );
  }

  it('lists a user’s sessions as a table and as JSON, never a token', async () => {
    const user = randomUUID();
    const longAgent = `Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \u001b[31mred\u001b[0m Chrome/126.0`;
    const first = await signIn(user, '203.0.113.7', longAgent);
    const second = await signIn(user, null, null);
    const stranger = await signIn(randomUUID(), '198.51.100.1', 'curl/8');
    await gh.sessions.validate(second.token);
    // The service writes buffered activity on its own schedule; the command reads what is stored.
    await gh.sessions.flush();

    const table = await cli(['list', '--user', user], env);
    assert.equal(table.code, 0, table.stderr);
    assert.equal(table.stderr, '');
    const lines = table.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 3, table.stdout);
    assert.match(
      lines[0] ?? '',
      /^HANDLE +CREATED +LAST SEEN +IDLE EXPIRES +ABSOLUTE EXPIRES +REQUESTS +IP +USER AGENT$/,
    );
    assert.ok(lines[1]?.startsWith(`${first.handle} `), 'oldest first, full handle');
    assert.ok(lines[2]?.startsWith(`${second.handle} `));
    assert.match(lines[1] ?? '', / 203\.0\.113\.7 /);
    assert.match(lines[1] ?? '', /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/);
    assert.match(lines[1] ?? '', / Mozilla\/5\.0 \(X11; Linux x86_64\) AppleWe…$/, 'user agent truncated');
    assert.ok(!table.stdout.includes('\u001b'), 'no terminal escape reaches the operator');
    assert.ok(!table.stdout.includes(stranger.handle), 'only that user’s sessions');
    assertNoTokens(table, [first, second, stranger]);

    const json = await cli(['list', '--json', '--user', user], env);
    assert.equal(json.code, 0, json.stderr);
    const listed = JSON.parse(json.stdout) as Array<Record<string, unknown>>;
    assert.deepEqual(
      listed.map((session) => session['handle']),
      [first.handle, second.handle],
    );
    const [older, newer] = listed;
    assert.ok(older && newer);
    assert.equal(older['ip'], '203.0.113.7');
    assert.equal(older['userAgent'], longAgent, 'JSON keeps the full value, escaped');
    assert.equal(older['userId'], user);
    assert.match(String(older['absoluteExpiresAt']), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.equal(newer['ip'], null);
    assert.equal(newer['requestCount'], 1);
    assert.ok(!json.stdout.includes('\u001b'));
    assertNoTokens(json, [first, second, stranger]);

    const nobody = await cli(['list', '--user', randomUUID()], env);
    assert.deepEqual(nobody, { code: 0, stdout: 'no live sessions\n', stderr: '' });
    const nobodyJson = await cli(['list', '--user', randomUUID(), '--json'], env);
    assert.deepEqual(JSON.parse(nobodyJson.stdout), []);
  });

  it('revoke ends exactly that session, announced to other instances; again exits 1; revoke-all ends the rest', async () => {
    const user = randomUUID();
    const first = await signIn(user, null, 'firefox');
    const second = await signIn(user, null, 'safari');
    const third = await signIn(user, null, 'edge');

    const revoked = await cli(['revoke', first.handle], env);
    assert.deepEqual(revoked, { code: 0, stdout: 'revoked\n', stderr: '' });
    await assertRevoked(first.token);
    assert.ok(await gh.sessions.validate(second.token), 'the others stay valid');
    assert.ok(await gh.sessions.validate(third.token));
    await waitFor('the other instance to hear of the revocation', () =>
      ended.some((event) => event.handle === first.handle),
    );
    assert.deepEqual(
      ended.find((event) => event.handle === first.handle),
      { handle: first.handle, reason: 'revoked', cause: 'terminated' },
    );

    const again = await cli(['revoke', first.handle], env);
    assert.deepEqual(again, { code: 1, stdout: '', stderr: 'no live session with that handle\n' });
    // Handles are base64url and may begin with "-": such an argument is a handle, not an option.
    const dashed = await cli(['revoke', `-${'A'.repeat(37)}`], env);
    assert.equal(dashed.code, 1, dashed.stderr);

    const all = await cli(['revoke-all', '--user', user], env);
    assert.deepEqual(all, { code: 0, stdout: 'revoked 2 sessions\n', stderr: '' });
    await assertRevoked(second.token);
    await assertRevoked(third.token);
    await waitFor('the other instance to hear of revoke-all', () =>
      [second.handle, third.handle].every((handle) =>
        ended.some((event) => event.handle === handle && event.reason === 'revoked'),
      ),
    );
    assert.equal((await cli(['list', '--user', user], env)).stdout, 'no live sessions\n');
    const none = await cli(['revoke-all', '--user', user], env);
    assert.deepEqual(none, { code: 0, stdout: 'revoked 0 sessions\n', stderr: '' });
    const one = await signIn(user, null, null);
    assert.equal((await cli(['revoke-all', '--user', user], env)).stdout, 'revoked 1 session\n');
    await assertRevoked(one.token);
  });

  it('answers usage errors with exit 2 and the usage, and --help with exit 0, before reading any configuration', async () => {
    const handle = 'A'.repeat(38);
    for (const argv of [
      [],
      ['bogus'],
      ['list'],
      ['list', '--user'],
      ['list', '--user', ''],
      ['list', '--user', 'u1', '--bogus'],
      ['list', '--user', 'u1', 'extra'],
      ['revoke'],
      ['revoke', 'not-a-handle'],
      ['revoke', handle, handle],
      ['revoke', handle, '--user', 'u1'],
      ['revoke-all'],
      ['revoke-all', '--user', 'u1', '--json'],
    ]) {
      const outcome = await cli(argv, {});
      assert.equal(outcome.code, 2, `${JSON.stringify(argv)}: ${outcome.stderr}`);
      assert.equal(outcome.stdout, '');
      assert.match(
        outcome.stderr,
        /^gatehouse sessions: .+\n\nUsage: gatehouse sessions/,
        JSON.stringify(argv),
      );
    }
    assert.match((await cli(['revoke', 'x'], {})).stderr, /not a session handle: expected 38 characters/);
    for (const argv of [
      ['--help'],
      ['-h'],
      ['help'],
      ['list', '-h'],
      ['revoke', '--help'],
      ['revoke-all', '-h'],
    ]) {
      const outcome = await cli(argv, {});
      assert.equal(outcome.code, 0, JSON.stringify(argv));
      assert.match(outcome.stdout, /^Usage: gatehouse sessions/);
      assert.equal(outcome.stderr, '');
    }
    assert.match((await cli(['list', '--help'], {})).stdout, /list --user <userId> \[--json\]/);
  });

  it('refuses the memory store, invalid configuration and missing keys, creating nothing', async () => {
    for (const memory of [{ SECRET_KEYS: secret }, { SECRET_KEYS: secret, REDIS_ENABLED: 'false' }]) {
      const outcome = await cli(['list', '--user', 'u1'], memory);
      assert.equal(outcome.code, 2);
      assert.match(outcome.stderr, /memory store/);
      assert.match(outcome.stderr, /live inside the service process/);
      assert.equal(outcome.stderr.trimEnd().split('\n').length, 1, 'one line');
    }

    const invalid = await cli(['list', '--user', 'u1'], { ...env, SESSION_IDLE_TIMEOUT: '30x' });
    assert.equal(invalid.code, 2);
    assert.match(invalid.stderr, /SESSION_IDLE_TIMEOUT="30x": expected/);
    const shortKey = await cli(['list', '--user', 'u1'], { ...env, SECRET_KEYS: 'tooshort' });
    assert.equal(shortKey.code, 2);
    assert.ok(!shortKey.stderr.includes('tooshort'), 'secrets are not echoed');

    const dataDir = tempDir();
    dirs.push(dataDir);
    const noKeys = { ...env, SECRET_KEYS: undefined, DATA_DIR: dataDir };
    const missing = await cli(['list', '--user', 'u1'], noKeys);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /no SECRET_KEYS and no development key in DATA_DIR/);
    assert.deepEqual(readdirSync(dataDir), [], 'no development key is created');

    const production = await cli(['list', '--user', 'u1'], { ...noKeys, NODE_ENV: 'production' });
    assert.equal(production.code, 2);
    assert.match(production.stderr, /SECRET_KEYS=\(unset\): required when NODE_ENV=production/);

    // The development key the service generated is read (not replaced), and names the same sessions.
    writeFileSync(join(dataDir, 'secret-keys'), `${secret}\n`, { mode: 0o600 });
    const user = randomUUID();
    const session = await signIn(user, null, null);
    const listed = await cli(['list', '--user', user], noKeys);
    assert.equal(listed.code, 0, listed.stderr);
    assert.ok(listed.stdout.includes(session.handle));
    writeFileSync(join(dataDir, 'secret-keys'), 'nonsense\n');
    const bad = await cli(['list', '--user', user], noKeys);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /does not hold valid keys/);
  });

  it('says Redis is unreachable in one line within the wait bound, without a stack trace', async () => {
    for (const argv of [
      ['list', '--user', 'u1'],
      ['revoke-all', '--user', 'u1'],
      ['revoke', 'A'.repeat(38)],
    ]) {
      const started = Date.now();
      const outcome = await cli(argv, { ...env, REDIS_URL: 'redis://127.0.0.1:1' });
      const elapsed = Date.now() - started;
      assert.equal(outcome.code, 2, outcome.stderr);
      assert.equal(outcome.stdout, '');
      assert.match(outcome.stderr, /^gatehouse sessions: Redis is not answering .*127\.0\.0\.1:1/);
      assert.equal(outcome.stderr.trimEnd().split('\n').length, 1, `one line: ${outcome.stderr}`);
      assert.ok(!/\n\s+at /.test(outcome.stderr), 'no stack trace');
      assert.ok(elapsed < 6000, `took ${String(elapsed)} ms`);
    }
  });

  it('durable mode: revoke and revoke-all tombstone the SQL copy (PGlite in DATA_DIR)', async () => {
    const dataDir = tempDir();
    dirs.push(dataDir);
    const user = randomUUID();
    // The service's side: the schema, and sessions created in durable mode. PGlite in a directory
    // is single-process, so it is closed before the command opens it.
    let db = await openDatabase(undefined, dataDir);
    await migrate(db);
    const durable = await createGatehouse({
      redis: redis.connection,
      secretKeys: [secret],
      origin: 'http://localhost',
      keyPrefix: prefix,
      sessions: { repository: new SqlSessionRepository(db) },
    });
    const first = (await durable.sessions.create({ userId: user })).session.handle;
    const second = (await durable.sessions.create({ userId: user })).session.handle;
    await durable.close();
    await db.close();

    const durableEnv = { ...env, SESSION_DURABLE: 'true', DATA_DIR: dataDir };
    const revoked = await cli(['revoke', first], durableEnv);
    assert.deepEqual(revoked, { code: 0, stdout: 'revoked\n', stderr: '' });
    await waitFor('the other instance to hear of it', () => ended.some((event) => event.handle === first));

    const rows = async () => {
      const result = await db.query(
        'SELECT token_hash, ended_at_ms, end_reason FROM gh_sessions ORDER BY created_at_ms',
      );
      return result.rows as Array<{ token_hash: string; ended_at_ms: unknown; end_reason: string | null }>;
    };
    db = await openDatabase(undefined, dataDir);
    try {
      const [firstRow, secondRow] = await rows();
      assert.ok(firstRow && secondRow);
      assert.equal(firstRow.token_hash, first.slice(16));
      assert.notEqual(firstRow.ended_at_ms, null, 'the SQL copy is tombstoned');
      assert.equal(firstRow.end_reason, 'revoked');
      assert.equal(secondRow.ended_at_ms, null, 'the other stays live');

      // While another process has the embedded database open, the command does not write to it.
      const busy = await cli(['revoke', second], durableEnv);
      assert.equal(busy.code, 2);
      assert.match(busy.stderr, /is open in another process/);
      assert.equal(busy.stdout, '');
    } finally {
      await db.close();
    }
    // Listing does not need the database (it reads Redis, as the service does).
    assert.ok((await cli(['list', '--user', user], durableEnv)).stdout.includes(second));

    const all = await cli(['revoke-all', '--user', user], durableEnv);
    assert.deepEqual(all, { code: 0, stdout: 'revoked 1 session\n', stderr: '' });
    db = await openDatabase(undefined, dataDir);
    try {
      const live = (await rows()).filter((row) => row.ended_at_ms === null);
      assert.deepEqual(live, [], 'every SQL copy is tombstoned');
    } finally {
      await db.close();
    }
  });

  it('durable mode without a session table or an embedded database: Redis only, and says so', async () => {
    const user = randomUUID();
    const emptyDir = tempDir();
    const unmigratedDir = tempDir();
    dirs.push(emptyDir, unmigratedDir);
    await (await openDatabase(undefined, unmigratedDir)).close();

    const noDatabase = await signIn(user, null, null);
    const first = await cli(['revoke', noDatabase.handle], {
      ...env,
      SESSION_DURABLE: 'true',
      DATA_DIR: emptyDir,
    });
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout, 'revoked\n');
    assert.match(first.stderr, /note: SESSION_DURABLE is on but DATA_DIR has no embedded database/);
    assert.deepEqual(readdirSync(emptyDir), [], 'no database is created');
    await assertRevoked(noDatabase.token);

    const noTable = await signIn(user, null, null);
    const second = await cli(['revoke', noTable.handle], {
      ...env,
      SESSION_DURABLE: 'true',
      DATA_DIR: unmigratedDir,
    });
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout, 'revoked\n');
    assert.match(second.stderr, /note: .*has no gh_sessions table \(migrations not run\)/);
    await assertRevoked(noTable.token);
    const db = await openDatabase(undefined, unmigratedDir);
    try {
      const { rows } = await db.query("SELECT to_regclass('gh_sessions') IS NULL AS absent");
      assert.deepEqual(rows, [{ absent: true }], 'the command runs no migration');
    } finally {
      await db.close();
    }
  });
});
