/**
 * `gatehouse users grant-role|revoke-role EMAIL admin`, the only way to the admin role: run as an
 * operator runs it (a process, with the service's environment) against two running instances on
 * one Redis and one PostgreSQL, it changes the roles, audits the change and ends the user's
 * sessions, refused within 2 s on the other instance; the next sign-in has the new roles. With the
 * embedded database it waits for the service to stop, then also ends the durable copies; it
 * refuses what it cannot do safely; and `serve` refuses ADMIN_EMAILS, naming the command.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import pg from 'pg';

import { usersCommand } from '../../src/cli/users.js';
import { Client, freshEmail, readEvents } from '../helpers/client.js';
import { createTestDatabase, startService } from '../helpers/start-service.js';
import { assertRefusedWithin, startTwoInstances, via, type TwoInstances } from '../helpers/two-instances.js';
import { runCaptured, runProgram, type Outcome } from '../helpers/command-outcome.js';

/** The command in this process, its output captured. */
function inProcess(argv: string[], env: Record<string, string>): Promise<Outcome> {
  return runCaptured(usersCommand, argv, env);
}

describe('gatehouse users on two running instances', { timeout: 180_000 }, () => {
  let fleet: TwoInstances;
  let sql: pg.Client;

  before(async () => {
    fleet = await startTwoInstances();
    sql = new pg.Client({ connectionString: fleet.databaseUrl });
    await sql.connect();
  });
  after(async () => {
    await sql.end();
    await fleet.close();
  });

  it('grant-role ends the sessions (refused within 2 s elsewhere); the next sign-in has admin and opens /admin', async () => {
    const email = freshEmail();
    const user = new Client(fleet.a.base);
    await user.signUp(email);
    await user.signIn(email);
    const onB = via(user, fleet.b);
    assert.equal((await onB.get('/admin')).status, 403);
    let granted: Outcome & { exitedAtMs: number } = { code: -1, stdout: '', stderr: '', exitedAtMs: 0 };
    const stream = await readEvents(
      `${fleet.b.base}/api/v1/events`,
      { authorization: `Bearer ${String(user.sessionToken)}`, 'x-forwarded-for': user.ip },
      async () => {
        granted = await runProgram(['users', 'grant-role', email.toUpperCase(), 'admin'], fleet.env);
      },
      20_000,
    );
    assert.equal(granted.code, 0, granted.stderr);
    assert.match(
      granted.stdout,
      /^granted admin to user [0-9a-f-]{36} \(roles now: owner, member, admin\); ended 1 session/,
    );
    assert.ok(!granted.stdout.includes(email), 'the email is not printed back');
    assert.match(stream.text, /event: session-ended\ndata: \{"reason":"terminated"\}/);
    await assertRefusedWithin(onB, granted.exitedAtMs);

    const again = new Client(fleet.b.base);
    await again.signIn(email);
    assert.deepEqual(again.user?.roles, ['owner', 'member', 'admin']);
    const me = (await again.get('/api/v1/me')).json as { data: { user: { roles: string[] } } };
    assert.deepEqual(me.data.user.roles, ['owner', 'member', 'admin']);
    const page = await via(again, fleet.a).get('/admin');
    assert.equal(page.status, 200);
    assert.match(page.text, /gatehouse operations/);

    // Granting what is held already changes nothing, and says so: the session lives on.
    const noop = await runProgram(['users', 'grant-role', email, 'admin'], fleet.env);
    assert.equal(noop.code, 0, noop.stderr);
    assert.match(noop.stdout, /already holds admin: nothing changed/);
    assert.equal((await again.get('/api/v1/me')).status, 200);

    // Revoking takes it away likewise.
    const revoked = await runProgram(['users', 'revoke-role', email, 'admin'], fleet.env);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.match(revoked.stdout, /^revoked admin from user .* \(roles now: owner, member\); ended 1 session/);
    await assertRefusedWithin(via(again, fleet.a), revoked.exitedAtMs);
    const after = new Client(fleet.a.base);
    await after.signIn(email);
    assert.deepEqual(after.user?.roles, ['owner', 'member']);
    assert.equal((await via(after, fleet.b).get('/admin')).status, 403);
    const notHeld = await runProgram(['users', 'revoke-role', email, 'admin'], fleet.env);
    assert.equal(notHeld.code, 0);
    assert.match(notHeld.stdout, /does not hold admin: nothing changed/);

    // Both changes are audited, with the user id and the role, and no email.
    await Promise.all([fleet.a.service.context.audit.flush(), fleet.b.service.context.audit.flush()]);
    const { rows } = await sql.query(
      "SELECT type, user_id, details FROM audit_log WHERE type IN ('role.granted', 'role.revoked') ORDER BY id",
    );
    assert.deepEqual(rows, [
      { type: 'role.granted', user_id: after.user.id, details: { role: 'admin' } },
      { type: 'role.revoked', user_id: after.user.id, details: { role: 'admin' } },
    ]);
  });

  it('refuses an unknown email (1), another role (2) and a database the service has not migrated (2)', async () => {
    const unknown = await runProgram(['users', 'grant-role', freshEmail(), 'admin'], fleet.env);
    assert.equal(unknown.code, 1);
    assert.equal(unknown.stderr, 'gatehouse users: no account has that email\n');
    for (const role of ['owner', 'member', 'root']) {
      const refused = await inProcess(['grant-role', freshEmail(), role], fleet.env);
      assert.equal(refused.code, 2, role);
      assert.match(refused.stderr, /only the role admin is given and taken by this command/);
      assert.match(refused.stderr, /owner and member are organization roles/);
    }
    const usage = await inProcess(['grant-role', 'admin'], fleet.env);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /needs an email and a role/);
    assert.equal((await inProcess(['grant-role', 'not-an-email', 'admin'], fleet.env)).code, 2);
    assert.equal((await inProcess(['promote', 'a@b.example', 'admin'], fleet.env)).code, 2);

    const bare = await createTestDatabase();
    try {
      const unmigrated = await inProcess(['grant-role', freshEmail(), 'admin'], {
        ...fleet.env,
        DATABASE_URL: bare.url,
      });
      assert.equal(unmigrated.code, 2);
      assert.match(unmigrated.stderr, /is at schema version 0, this command needs \d+: start the service/);
    } finally {
      await bare.drop();
    }
  });

  it('refuses the memory store with DATABASE_URL: a running service would keep its sessions', async () => {
    const refused = await inProcess(['grant-role', freshEmail(), 'admin'], {
      DATABASE_URL: fleet.databaseUrl,
      SECRET_KEYS: fleet.env.SECRET_KEYS ?? '',
    });
    assert.equal(refused.code, 2);
    assert.match(
      refused.stderr,
      /memory store and DATABASE_URL: its sessions live inside the running service/,
    );
  });
});

describe('gatehouse users with the embedded database and the memory store', { timeout: 120_000 }, () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'gh-cli-users-'));
  const env = { DATA_DIR: dataDir, SECRET_KEYS: randomBytes(32).toString('hex') };
  after(() => {
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('waits for the service to stop, then grants and ends the durable sessions', async () => {
    const email = freshEmail();
    let running = await startService(env);
    const user = new Client(running.base);
    await user.signUp(email);
    await user.signIn(email);
    const busy = await inProcess(['grant-role', email, 'admin'], env);
    assert.equal(busy.code, 2);
    assert.match(busy.stderr, /is open in another process \(the service\?\)/);
    await running.close();

    const granted = await inProcess(['grant-role', email, 'admin'], env);
    assert.equal(granted.code, 0, granted.stderr);
    assert.match(granted.stdout, /granted admin .*ended 1 session/);

    running = await startService(env);
    try {
      // The session was kept in SQL (durable mode): it would have come back, with its old roles.
      const old = new Client(running.base);
      old.sessionToken = user.sessionToken;
      assert.equal((await old.get('/api/v1/me', { as: 'session-bearer' })).status, 401);
      const fresh = new Client(running.base);
      await fresh.signIn(email);
      assert.deepEqual(fresh.user?.roles, ['owner', 'member', 'admin']);
      assert.equal((await fresh.get('/admin')).status, 200);
    } finally {
      await running.close();
    }
  });
});

describe('gatehouse serve and --help', { timeout: 60_000 }, () => {
  it('serve refuses ADMIN_EMAILS, naming the command that grants roles and not the emails', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'gh-cli-admin-emails-'));
    try {
      const { code, stdout } = await runProgram(['serve'], {
        DATA_DIR: dataDir,
        ADMIN_EMAILS: 'first.signup@clinic.example',
      });
      assert.equal(code, 1);
      assert.match(stdout, /ADMIN_EMAILS=\(not shown: personal data\): no longer exists/);
      assert.ok(stdout.includes('gatehouse users grant-role EMAIL admin'), stdout);
      assert.doesNotMatch(stdout, /clinic\.example/);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('lists the users command in --help, and explains it in its own --help', async () => {
    const help = await runProgram(['--help'], {});
    assert.equal(help.code, 0);
    assert.match(help.stdout, /users grant-role EMAIL admin, users revoke-role EMAIL admin/);
    const own = await runProgram(['users', '--help'], {});
    assert.equal(own.code, 0);
    assert.match(own.stdout, /grant-role <email> admin/);
    assert.match(own.stdout, /owner\s+and member are organization roles/);
  });
});
