/**
 * Organizations with owners (docs/http-api.md, "Organizations"), on two service instances sharing
 * one Redis and one PostgreSQL: the roles sign-up gives, the owner-only routes refused to every
 * other member, invites in SQL (bound to an email, single-use under a race, revoked, listed
 * without codes, stored as hashes), and a member removed on one instance while signed in on the
 * other: refused there within 2 seconds by every credential, their event stream ended with
 * `terminated`, their sign-in answered as a wrong password after a real hash check; and a
 * removal or role change that commits while a sign-in runs leaves no session with the old state.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it, mock } from 'node:test';

import pg from 'pg';

import type { SessionInput } from 'gatehouse';

import { Client, freshEmail, readEvents } from '../helpers/client.js';
import {
  assertRefusedWithin,
  CREDENTIALS,
  startTwoInstances,
  via,
  type TwoInstances,
} from '../helpers/two-instances.js';

const PASSWORD = 'correct horse battery staple';
const WRONG_CREDENTIALS = 'The email or password is wrong.';

describe('organizations with owners, on two instances', { timeout: 180_000 }, () => {
  let fleet: TwoInstances;
  let sql: pg.Client;
  /** Every email and invite code the tests used: none may be in an audit row. */
  const personal = new Set<string>();

  before(async () => {
    fleet = await startTwoInstances();
    sql = new pg.Client({ connectionString: fleet.databaseUrl });
    await sql.connect();
  });
  after(async () => {
    await sql.end();
    await fleet.close();
  });

  /** A new account signed in on instance `on` (with an invite code: a member of its organization). */
  async function signedUp(on: 'a' | 'b', inviteCode?: string): Promise<Client> {
    const client = new Client(fleet[on].base);
    const email = freshEmail();
    personal.add(email);
    await client.signUp(email, PASSWORD, inviteCode);
    await client.signIn(email);
    return client;
  }

  async function invite(owner: Client, body?: { email: string }): Promise<{ code: string; id: string }> {
    const answer = await owner.post('/api/v1/organizations/invites', body);
    assert.equal(answer.status, 201, answer.text);
    const code = String(answer.json.data.inviteCode);
    personal.add(code);
    return { code, id: String(answer.json.data.invite.id) };
  }

  function signUp(on: 'a' | 'b', email: string, inviteCode: string) {
    personal.add(email);
    return new Client(fleet[on].base).post('/api/v1/auth/signup', { email, password: PASSWORD, inviteCode });
  }

  it('makes the user who signs up without an invite the owner, and invited users members', async () => {
    const owner = await signedUp('a');
    assert.deepEqual(owner.user?.roles, ['owner', 'member']);
    const { code } = await invite(owner);
    const member = await signedUp('b', code);
    assert.deepEqual(member.user?.roles, ['member']);
    assert.equal(member.user.organizationId, owner.user.organizationId);
    for (const [client, roles] of [
      [owner, ['owner', 'member']],
      [member, ['member']],
    ] as const) {
      const me = await via(client, fleet.b).get('/api/v1/me');
      assert.equal(me.status, 200, me.text);
      assert.deepEqual(me.json.data.user.roles, roles);
    }
    // Every member may list the members: the organization's roles, in the order they joined.
    const listed = await member.get('/api/v1/organizations/members');
    assert.equal(listed.status, 200, listed.text);
    assert.deepEqual(
      listed.json.data.members.map((m: { id: string; email: string; roles: string[] }) => [
        m.id,
        m.email,
        m.roles,
      ]),
      [
        [owner.user.id, owner.user.email, ['owner', 'member']],
        [member.user.id, member.user.email, ['member']],
      ],
    );
    for (const m of listed.json.data.members) {
      assert.deepEqual(Object.keys(m).sort(), ['email', 'id', 'joinedAt', 'roles']);
      assert.ok(Date.parse(m.joinedAt) <= Date.now());
    }
  });

  it('answers every owner-only route 403 FORBIDDEN for a member, and 401 without a session', async () => {
    const owner = await signedUp('a');
    const pending = await invite(owner);
    const member = await signedUp('b', (await invite(owner)).code);
    const routes: [string, string, unknown?][] = [
      ['POST', '/api/v1/organizations/invites', {}],
      ['GET', '/api/v1/organizations/invites'],
      ['DELETE', `/api/v1/organizations/invites/${pending.id}`],
      ['DELETE', `/api/v1/organizations/members/${String(owner.user?.id)}`],
    ];
    for (const [method, path, body] of routes) {
      for (const as of CREDENTIALS) {
        const refused = await member.request(method, path, { as, ...(body === undefined ? {} : { body }) });
        assert.equal(refused.status, 403, `${method} ${path} as ${as}: ${refused.text}`);
        assert.equal(refused.json.error.code, 'FORBIDDEN');
      }
      const anonymous = await new Client(fleet.a.base).request(
        method,
        path,
        body === undefined ? {} : { body },
      );
      assert.equal(anonymous.status, 401, `${method} ${path}`);
    }
    // Nothing happened: the invite is pending, the owner is a member still.
    const invites = await owner.get('/api/v1/organizations/invites');
    assert.ok(invites.json.data.invites.some((item: { id: string }) => item.id === pending.id));
    assert.equal((await owner.get('/api/v1/me')).status, 200);
  });

  it('binds an invite to an email: another email is refused and does not use it up', async () => {
    const owner = await signedUp('a');
    const bound = freshEmail();
    personal.add(bound);
    const created = await owner.post('/api/v1/organizations/invites', { email: `  ${bound.toUpperCase()} ` });
    assert.equal(created.status, 201, created.text);
    const { inviteCode, expiresAt, invite: shown } = created.json.data;
    personal.add(inviteCode);
    assert.equal(shown.email, bound, 'the normalised email');
    assert.equal(shown.expiresAt, expiresAt);
    const days = (Date.parse(expiresAt) - Date.parse(shown.createdAt)) / 86_400_000;
    assert.ok(Math.abs(days - 7) < 0.01, `${String(days)} days`);

    const other = await signUp('b', freshEmail(), inviteCode);
    assert.equal(other.status, 409, other.text);
    assert.equal(other.json.error.code, 'NONCE_INVALID');
    const listed = await owner.get('/api/v1/organizations/invites');
    assert.ok(
      listed.json.data.invites.some((item: { id: string }) => item.id === shown.id),
      'still pending',
    );

    const right = await signUp('b', bound.toUpperCase(), inviteCode);
    assert.equal(right.status, 201, right.text);
    assert.equal(right.json.data.user.organizationId, owner.user?.organizationId);
    assert.deepEqual(right.json.data.user.roles, ['member']);
    const again = await signUp('a', freshEmail(), inviteCode);
    assert.equal(again.status, 409);
    assert.equal(again.json.error.code, 'NONCE_INVALID');
    const after = await owner.get('/api/v1/organizations/invites');
    assert.ok(!after.json.data.invites.some((item: { id: string }) => item.id === shown.id), 'used up');
    assert.equal(
      (await via(owner, fleet.a).post('/api/v1/organizations/invites', { email: 'nope' })).status,
      400,
    );
  });

  it('refuses a revoked invite, and revokes only pending invites of the caller', async () => {
    const owner = await signedUp('a');
    const stranger = await signedUp('b');
    const { code, id } = await invite(owner);
    assert.equal((await stranger.request('DELETE', `/api/v1/organizations/invites/${id}`)).status, 404);
    const revoked = await via(owner, fleet.b).request('DELETE', `/api/v1/organizations/invites/${id}`);
    assert.equal(revoked.status, 204, revoked.text);
    const refused = await signUp('a', freshEmail(), code);
    assert.equal(refused.status, 409);
    assert.equal(refused.json.error.code, 'NONCE_INVALID');
    for (const path of [id, '00000000-0000-0000-0000-000000000000', 'not-a-uuid']) {
      const missing = await owner.request('DELETE', `/api/v1/organizations/invites/${path}`);
      assert.equal(missing.status, 404, path);
      assert.equal(missing.json.error.code, 'NOT_FOUND');
    }
    const listed = await owner.get('/api/v1/organizations/invites');
    assert.ok(!listed.json.data.invites.some((item: { id: string }) => item.id === id));
  });

  it('lists pending invites without a code, and stores codes only as hashes', async () => {
    const owner = await signedUp('b');
    const made = [await invite(owner), await invite(owner, { email: freshEmail() })];
    const listed = await via(owner, fleet.a).get('/api/v1/organizations/invites');
    assert.equal(listed.status, 200, listed.text);
    assert.deepEqual(
      listed.json.data.invites.map((item: { id: string }) => item.id),
      made.map((item) => item.id),
    );
    for (const item of listed.json.data.invites) {
      assert.deepEqual(Object.keys(item).sort(), ['createdAt', 'email', 'expiresAt', 'id']);
    }
    const stored = await sql.query('SELECT * FROM invites WHERE organization_id = $1', [
      owner.user?.organizationId,
    ]);
    assert.equal(stored.rows.length, 2);
    for (const { code } of made) {
      assert.ok(!listed.text.includes(code), 'no code in the list');
      assert.ok(!JSON.stringify(stored.rows).includes(code), 'no code in the table');
      const hash = createHash('sha256').update(code).digest('hex');
      assert.ok(stored.rows.some((row: { code_hash: string }) => row.code_hash === hash));
    }
  });

  it('lets exactly one of concurrent sign-ups with one code in, across both instances', async () => {
    const owner = await signedUp('a');
    const { code } = await invite(owner);
    const answers = await Promise.all(
      Array.from({ length: 6 }, (_unused, i) => signUp(i % 2 === 0 ? 'a' : 'b', freshEmail(), code)),
    );
    assert.deepEqual(
      answers.map((answer) => answer.status).sort(),
      [201, 409, 409, 409, 409, 409],
      answers.map((answer) => answer.text).join('\n'),
    );
    for (const answer of answers.filter((item) => item.status === 409)) {
      assert.equal(answer.json.error.code, 'NONCE_INVALID');
    }
    const members = await owner.get('/api/v1/organizations/members');
    assert.equal(members.json.data.members.length, 2);
  });

  it('removes a member: refused on the other instance within 2 s by every credential, stream terminated, sign-in refused', async () => {
    const owner = await signedUp('a');
    const member = await signedUp('a', (await invite(owner)).code);
    const email = String(member.user?.email);
    const onB = via(member, fleet.b);
    for (const as of CREDENTIALS) assert.equal((await onB.get('/api/v1/me', { as })).status, 200, as);
    let removedAtMs = 0;
    const stream = await readEvents(
      `${fleet.b.base}/api/v1/events`,
      { authorization: `Bearer ${String(member.sessionToken)}`, 'x-forwarded-for': member.ip },
      async () => {
        const removed = await owner.request(
          'DELETE',
          `/api/v1/organizations/members/${String(member.user?.id)}`,
        );
        assert.equal(removed.status, 204, removed.text);
        removedAtMs = Date.now();
      },
      5000,
    );
    assert.match(stream.text, /event: session-ended\ndata: \{"reason":"terminated"\}/);
    assert.ok(stream.elapsedMs < 1000, `the stream closed after ${String(stream.elapsedMs)} ms`);
    const slowestMs = await assertRefusedWithin(onB, removedAtMs);
    assert.ok(slowestMs < 2000);
    // Also where the removal was answered.
    assert.equal((await member.get('/api/v1/me', { as: 'access-bearer' })).status, 401);

    // Their sign-in is a wrong password's answer, after verifying their own hash.
    const { rows } = await sql.query('SELECT password_hash FROM users WHERE id = $1', [member.user?.id]);
    const storedHash = (rows[0] as { password_hash: string }).password_hash;
    const verify = mock.method(fleet.b.service.context.passwords, 'verify');
    try {
      const refused = await new Client(fleet.b.base).post('/api/v1/auth/signin', {
        email,
        password: PASSWORD,
      });
      assert.equal(refused.status, 401);
      assert.equal(refused.json.error.code, 'UNAUTHENTICATED');
      assert.equal(refused.json.error.message, WRONG_CREDENTIALS);
      assert.ok(
        verify.mock.calls.some((call) => call.arguments[0] === storedHash),
        'their hash was verified',
      );
      const wrong = await new Client(fleet.b.base).post('/api/v1/auth/signin', {
        email: freshEmail(),
        password: 'not the password at all',
      });
      assert.equal(wrong.json.error.message, refused.json.error.message);
    } finally {
      verify.mock.restore();
    }
    // Gone from the members list; asking again is 404; the email stays taken.
    const listed = await owner.get('/api/v1/organizations/members');
    assert.deepEqual(
      listed.json.data.members.map((m: { id: string }) => m.id),
      [owner.user?.id],
    );
    const again = await owner.request('DELETE', `/api/v1/organizations/members/${String(member.user?.id)}`);
    assert.equal(again.status, 404);
    assert.equal(
      (await new Client(fleet.a.base).post('/api/v1/auth/signup', { email, password: PASSWORD })).status,
      409,
    );
  });

  it('refuses to remove the owner themself (409) or anyone outside the organization (404)', async () => {
    const owner = await signedUp('a');
    const stranger = await signedUp('b');
    const self = await owner.request('DELETE', `/api/v1/organizations/members/${String(owner.user?.id)}`);
    assert.equal(self.status, 409, self.text);
    assert.equal(self.json.error.code, 'CONFLICT');
    for (const id of [String(stranger.user?.id), '00000000-0000-0000-0000-000000000000', 'x']) {
      const missing = await owner.request('DELETE', `/api/v1/organizations/members/${id}`);
      assert.equal(missing.status, 404, id);
      assert.equal(missing.json.error.code, 'NOT_FOUND');
    }
    assert.equal((await owner.get('/api/v1/me')).status, 200);
    assert.equal((await via(stranger, fleet.a).get('/api/v1/me')).status, 200);
  });

  it('ends a sign-in session made from a user read before a removal or role change committed', async () => {
    const owner = await signedUp('a');
    const member = await signedUp('a', (await invite(owner)).code);
    const email = String(member.user?.email);
    const sessions = fleet.a.service.context.gh.sessions;
    const create = sessions.create.bind(sessions);
    const made: string[] = [];
    /** Sign-in makes the session, then `change` commits, as if another instance raced it. */
    const racing = (change: string) =>
      mock.method(sessions, 'create', async (input: SessionInput) => {
        const created = await create(input);
        if (made.length === 0) await sql.query(change, [member.user?.id]);
        made.push(created.token);
        return created;
      });

    const roleChange = racing("UPDATE users SET roles = array_append(roles, 'admin') WHERE id = $1");
    try {
      const signedIn = await new Client(fleet.a.base).signIn(email);
      assert.deepEqual(signedIn.json.data.user.roles, ['member', 'admin']);
      assert.equal(made.length, 2, 'a second session, with the roles SQL has now');
      assert.equal(await sessions.validate(made[0]), null, 'the session with the old roles is ended');
      assert.equal(signedIn.json.data.sessionToken, made[1]);
    } finally {
      roleChange.mock.restore();
    }

    made.length = 0;
    const removal = racing('UPDATE users SET removed_at = now() WHERE id = $1');
    try {
      const refused = await new Client(fleet.a.base).post('/api/v1/auth/signin', {
        email,
        password: PASSWORD,
      });
      assert.equal(refused.status, 401, refused.text);
      assert.equal(refused.json.error.message, WRONG_CREDENTIALS);
      assert.equal(made.length, 1);
      assert.equal(await sessions.validate(made[0]), null, 'no session outlives the removal');
    } finally {
      removal.mock.restore();
    }
  });

  it('keeps emails and invite codes out of the audit rows, which hold ids', async () => {
    await Promise.all([fleet.a.service.context.audit.flush(), fleet.b.service.context.audit.flush()]);
    const { rows } = await sql.query(
      "SELECT type, user_id, details FROM audit_log WHERE type IN ('invite.created', 'invite.revoked', 'invite.refused', 'member.removed')",
    );
    const types = new Set(rows.map((row: { type: string }) => row.type));
    assert.deepEqual([...types].sort(), [
      'invite.created',
      'invite.refused',
      'invite.revoked',
      'member.removed',
    ]);
    const removed = rows.find((row: { type: string }) => row.type === 'member.removed') as {
      user_id: string;
      details: { memberId?: string };
    };
    assert.match(String(removed.details.memberId), /^[0-9a-f-]{36}$/);
    const all = JSON.stringify((await sql.query('SELECT * FROM audit_log')).rows);
    assert.ok(personal.size > 10);
    for (const value of personal) assert.ok(!all.includes(value), 'an email or code in an audit row');
    assert.doesNotMatch(all, /@clinic\.example/);
  });
});
