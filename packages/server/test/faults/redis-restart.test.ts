/**
 * Redis killed and restarted without its data under a running reference service with durable
 * sessions, while clients keep signing in and out, validating, taking form locks and spending
 * public-form nonces: every kept session stays valid and every signed-out one refused, in every
 * phase; nonces and locks fail closed (503) while Redis is gone; no nonce is accepted twice;
 * fencing tokens keep growing; and the service recovers by itself. service/fleet.test.ts
 * checks the degradation table once, without load; this checks it under load, across the whole
 * outage.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import pg from 'pg';

import { startStandalone, waitFor, type Standalone } from '../../../gatehouse/test/harness/topologies.js';
import { Client, freshEmail, type Answer } from '../helpers/client.js';
import { createTestDatabase, startService, type RunningService } from '../helpers/start-service.js';
import {
  createForm,
  dataOf,
  errorCode,
  FIELDS,
  PASSWORD,
  serviceEnv,
  tally,
  type TestDatabase,
} from './redis-faults.js';

/** Takes over the credentials of a 200 sign-in answer. */
function adopt(client: Client, answer: Answer): void {
  const data = dataOf<{
    sessionToken: string;
    accessToken: string;
    csrfToken: string;
    session: { id: string };
    user: { id: string; email: string; organizationId: string; roles: string[] };
  }>(answer);
  client.sessionToken = data.sessionToken;
  client.accessToken = data.accessToken;
  client.csrfToken = data.csrfToken;
  client.sessionId = data.session.id;
  client.user = data.user;
}

/** The SQL row of a session, by its handle (pseudonym + token hash). */
async function sessionRow(
  sql: pg.Client,
  handle: string,
): Promise<{ ended_at_ms: string | null; end_reason: string | null } | undefined> {
  const { rows } = await sql.query<{ ended_at_ms: string | null; end_reason: string | null }>(
    'SELECT ended_at_ms, end_reason FROM gh_sessions WHERE uid = $1 AND token_hash = $2',
    [handle.slice(0, 16), handle.slice(16)],
  );
  return rows[0];
}

type Phase = 'before' | 'killing' | 'down' | 'restarting' | 'after';

interface Outcome {
  readonly kind: string;
  readonly status: number;
  readonly code: string | undefined;
  /** The phase when the request was sent, and when its answer came. */
  readonly from: Phase;
  readonly to: Phase;
}

interface HeldSession {
  readonly client: Client;
  readonly from: Phase;
  readonly to: Phase;
}

describe('Redis restarted without its data under load, with durable sessions', { timeout: 120_000 }, () => {
  let redis: Standalone;
  let database: TestDatabase;
  let running: RunningService;
  let sql: pg.Client;

  before(async () => {
    redis = await startStandalone();
    database = await createTestDatabase();
    running = await startService(serviceEnv(redis, database.url));
    sql = new pg.Client({ connectionString: database.url });
    await sql.connect();
  });

  after(async () => {
    await sql.end();
    await running.close();
    await redis.destroy();
    await database.drop();
  });

  it('keeps every session, fails nonces and locks closed while Redis is gone, then recovers by itself', async (t) => {
    const base = running.base;
    const emails = [freshEmail(), freshEmail(), freshEmail()];
    for (const email of emails) await new Client(base).signUp(email);
    const owner = new Client(base);
    await owner.signIn(emails[0] ?? '');
    const forms = [await createForm(owner, 'Intake'), await createForm(owner, 'Consent')];
    const [formA, formB] = forms as [string, string];

    let phase: Phase = 'before';
    let stopping = false;
    const outcomes: Outcome[] = [];
    const send = async (kind: string, request: () => Promise<Answer>): Promise<Answer> => {
      const from = phase;
      const answer = await request();
      outcomes.push({ kind, status: answer.status, code: errorCode(answer), from, to: phase });
      return answer;
    };

    // Sessions: sign in, use it, and either keep it or sign it out at once.
    const kept: HeldSession[] = [];
    const signedOut: HeldSession[] = [];
    const sessionWorker = async (email: string): Promise<void> => {
      for (let n = 0; !stopping; n++) {
        const client = new Client(base);
        const from = phase;
        const answer = await send('signin', () =>
          client.post('/api/v1/auth/signin', { email, password: PASSWORD }, { as: 'anonymous' }),
        );
        if (answer.status !== 200) {
          await sleep(25);
          continue;
        }
        adopt(client, answer);
        const signedInAt = { from, to: phase };
        await send('me-new', () => client.get('/api/v1/me', { as: 'session-bearer' }));
        if (n % 2 === 0) {
          kept.push({ client, ...signedInAt });
          continue;
        }
        const outFrom = phase;
        const out = await send('signout', () =>
          client.post('/api/v1/auth/signout', undefined, { as: 'session-bearer' }),
        );
        if (out.status === 204) signedOut.push({ client, from: outFrom, to: phase });
      }
    };
    // Every session kept stays valid, every session signed out stays refused, in every phase.
    const checker = async (): Promise<void> => {
      for (let n = 0; !stopping; n++) {
        const pool = n % 2 === 0 ? kept : signedOut;
        const held = pool[Math.floor(Math.random() * pool.length)];
        if (!held) {
          await sleep(20);
          continue;
        }
        const as = n % 4 < 2 ? 'session-bearer' : 'access-bearer';
        await send(pool === kept ? 'me-kept' : 'me-signed-out', () => held.client.get('/api/v1/me', { as }));
      }
    };

    // Nonces: fetch the public form, spend its nonce, replay it. Some nonces fetched before the
    // loss are kept unspent, and submitted while Redis is away.
    const accepted = new Map<string, number>();
    const spentBefore: string[] = [];
    // Per form: a nonce is bound to its form, and another form's would be refused as foreign.
    const unspentPools = new Map<string, string[]>();
    const triedWhileDown: string[] = [];
    const nonceWorker = async (formId: string): Promise<void> => {
      const visitor = new Client(base);
      const unspentPool = unspentPools.get(formId) ?? [];
      unspentPools.set(formId, unspentPool);
      const submit = (kind: string, nonce: string) =>
        send(kind, () =>
          visitor.post(`/api/v1/public/forms/${formId}/responses`, { nonce, answers: { a: 'x' } }),
        );
      for (let n = 0; !stopping; n++) {
        const fetched = await send('nonce-issue', () => visitor.get(`/api/v1/public/forms/${formId}`));
        let nonce: string | undefined;
        if (fetched.status === 200) {
          nonce = dataOf<{ nonce: string }>(fetched).nonce;
          if (n % 3 === 0 && phase === 'before' && unspentPool.length < 50) {
            unspentPool.push(nonce);
            continue;
          }
        } else {
          nonce = unspentPool.pop();
          if (nonce === undefined) {
            await sleep(25);
            continue;
          }
        }
        const from = phase;
        const spent = await submit('nonce-spend', nonce);
        if (spent.status === 201) {
          accepted.set(nonce, (accepted.get(nonce) ?? 0) + 1);
          if (from === 'before' && phase === 'before') spentBefore.push(nonce);
        }
        if (spent.status === 503 && from === 'down' && phase === 'down') triedWhileDown.push(nonce);
        const replayed = await submit('nonce-replay', nonce);
        if (replayed.status === 201) accepted.set(nonce, (accepted.get(nonce) ?? 0) + 1);
      }
    };

    // Locks: take a form's edit lock and release it; two workers contend for form A.
    const fences: Array<{ formId: string; fence: number; from: Phase; to: Phase }> = [];
    const lockWorker = async (formId: string): Promise<void> => {
      while (!stopping) {
        const from = phase;
        const taken = await send('lock', () =>
          owner.post(`/api/v1/forms/${formId}/lock`, undefined, { as: 'session-bearer' }),
        );
        if (taken.status !== 200) {
          await sleep(25);
          continue;
        }
        const { lock } = dataOf<{ lock: { token: string; fencingToken: number } }>(taken);
        fences.push({ formId, fence: lock.fencingToken, from, to: phase });
        await sleep(10);
        await send('unlock', () =>
          owner.request('DELETE', `/api/v1/forms/${formId}/lock`, {
            as: 'session-bearer',
            headers: { 'x-lock-token': lock.token },
          }),
        );
      }
    };

    const loops = [
      ...emails.map((email) => sessionWorker(email)),
      checker(),
      checker(),
      nonceWorker(formA),
      nonceWorker(formB),
      nonceWorker(formA),
      lockWorker(formA),
      lockWorker(formA),
      lockWorker(formB),
    ];
    // Each phase lasts a few seconds, and until every kind of request has been answered in it:
    // a loaded machine may take longer to get there.
    const seen = (at: Phase, kinds: readonly string[]) =>
      kinds.every((kind) => outcomes.some((o) => o.kind === kind && o.from === at && o.to === at));
    const hold = async (when: string, ms: number, enough: () => boolean) => {
      await sleep(ms);
      await waitFor(`enough requests answered ${when}`, enough, 30_000);
    };
    const fencedAt = (formId: string, at: Phase) => fences.some((f) => f.formId === formId && f.from === at);
    const startedAt = performance.now();
    await hold(
      'before the loss',
      2500,
      () =>
        kept.filter((held) => held.to === 'before').length >= 4 &&
        signedOut.filter((held) => held.to === 'before').length >= 2 &&
        spentBefore.length >= 2 &&
        forms.every((formId) => (unspentPools.get(formId)?.length ?? 0) >= 2 && fencedAt(formId, 'before')),
    );
    const admin = await redis.admin();
    const keysBefore = await admin.dbSize();
    admin.destroy();
    assert.ok(keysBefore > 0);

    phase = 'killing';
    await redis.server.kill();
    phase = 'down';
    await hold(
      'while Redis is down',
      3000,
      () =>
        triedWhileDown.length > 0 &&
        seen('down', [
          'signin',
          'me-kept',
          'me-signed-out',
          'nonce-issue',
          'nonce-spend',
          'nonce-replay',
          'lock',
        ]),
    );
    assert.equal(existsSync(join(redis.server.dir, 'dump.rdb')), false, 'Redis comes back empty');
    phase = 'restarting';
    const restartedAt = performance.now();
    await redis.server.restart();
    await waitFor(
      'the service to be ready again',
      async () => (await owner.get('/ready')).status === 200,
      20_000,
    );
    const recoveryMs = performance.now() - restartedAt;
    phase = 'after';
    await hold(
      'after the restart',
      2500,
      () =>
        forms.every((formId) => fencedAt(formId, 'after')) &&
        seen('after', ['signin', 'me-kept', 'me-signed-out', 'nonce-spend']),
    );
    stopping = true;
    await Promise.all(loops);
    const loadMs = performance.now() - startedAt;

    const within = (from: Phase) => outcomes.filter((o) => o.from === from && o.to === from);
    const down = within('down');
    t.diagnostic(`${String(outcomes.length)} requests in ${(loadMs / 1000).toFixed(1)} s`);
    t.diagnostic(`before: ${tally(within('before'))}`);
    t.diagnostic(`down: ${tally(down)}`);
    t.diagnostic(`after (ready ${recoveryMs.toFixed(0)} ms after the restart): ${tally(within('after'))}`);

    // Never a 500 (or any 5xx but a well-formed 503), in any phase.
    assert.deepEqual(
      outcomes.filter((o) => o.status >= 500 && !(o.status === 503 && o.code === 'SERVICE_UNAVAILABLE')),
      [],
    );
    // Sessions: kept ones were always valid (from SQL while Redis was away, refilled from SQL
    // into the empty Redis after), signed-out ones always refused.
    const meKept = outcomes.filter((o) => o.kind === 'me-kept' || o.kind === 'me-new');
    assert.deepEqual(
      meKept.filter((o) => o.status !== 200),
      [],
    );
    assert.ok(
      down.some((o) => o.kind === 'me-kept' && o.status === 200),
      'sessions validated while down',
    );
    const meOut = outcomes.filter((o) => o.kind === 'me-signed-out');
    assert.ok(meOut.length > 0);
    assert.deepEqual(
      meOut.filter((o) => o.status !== 401),
      [],
    );
    // While Redis was away: nonces and locks 503, sign-in 503, nothing granted.
    for (const kind of ['nonce-issue', 'nonce-spend', 'nonce-replay', 'lock', 'signin']) {
      const during = down.filter((o) => o.kind === kind);
      assert.ok(during.length > 0, `no ${kind} request while Redis was down`);
      assert.deepEqual(
        during.filter((o) => o.status !== 503 || o.code !== 'SERVICE_UNAVAILABLE'),
        [],
        `${kind} while down`,
      );
    }
    // Before and after: everything answered, nothing 503.
    for (const settled of ['before', 'after'] as const) {
      assert.deepEqual(
        within(settled).filter((o) => o.status >= 500),
        [],
        `5xx ${settled} the outage`,
      );
    }
    // No nonce was ever accepted twice.
    assert.deepEqual(
      [...accepted.values()].filter((count) => count > 1),
      [],
    );
    // Locks: granted again after the restart, with fencing tokens above every earlier one.
    for (const formId of forms) {
      const earlier = fences.filter((f) => f.formId === formId && f.to !== 'after' && f.to !== 'restarting');
      const later = fences.filter((f) => f.formId === formId && f.from === 'after');
      assert.ok(earlier.length > 0 && later.length > 0, 'locks granted before and after');
      const highestBefore = Math.max(...earlier.map((f) => f.fence));
      assert.ok(
        later.every((f) => f.fence > highestBefore),
        `fencing tokens after the restart (${String(Math.min(...later.map((f) => f.fence)))}) above ${String(highestBefore)}`,
      );
    }
    // (A lock granted just before the kill may be answered just after it: those count before.)
    assert.ok(
      fences.every((f) => f.from !== 'down'),
      'no lock granted while Redis was down',
    );

    // Afterwards, against the empty Redis: every session signed in before the loss is valid
    // (and live in SQL), every one signed out before it is refused (and ended in SQL).
    const keptBefore = kept.filter((held) => held.to === 'before');
    const outBefore = signedOut.filter((held) => held.to === 'before');
    t.diagnostic(
      `sessions before the loss: ${String(keptBefore.length)} kept, ${String(outBefore.length)} signed out; ` +
        `nonces: ${String(spentBefore.length)} spent before, ${String(triedWhileDown.length)} tried while down`,
    );
    assert.ok(keptBefore.length > 0 && outBefore.length > 0);
    for (const held of keptBefore) {
      const me = await held.client.get('/api/v1/me', { as: 'session-bearer' });
      assert.equal(me.status, 200, me.text);
      const row = await sessionRow(sql, String(held.client.sessionId));
      assert.ok(row && row.ended_at_ms === null, 'live in SQL');
    }
    for (const held of outBefore) {
      const me = await held.client.get('/api/v1/me', { as: 'session-bearer' });
      assert.equal(me.status, 401, me.text);
      assert.equal((await held.client.get('/api/v1/me', { as: 'access-bearer' })).status, 401);
      const row = await sessionRow(sql, String(held.client.sessionId));
      assert.ok(row && row.ended_at_ms !== null && row.end_reason === 'revoked', 'ended in SQL');
    }
    // A nonce spent before the loss stays spent; one tried while Redis was away is gone with it
    // (refused, never accepted); a fresh one spends exactly once.
    const visitor = new Client(base);
    assert.ok(spentBefore.length > 0 && triedWhileDown.length > 0);
    for (const nonce of [...spentBefore, ...triedWhileDown]) {
      for (const formId of forms) {
        const replay = await visitor.post(`/api/v1/public/forms/${formId}/responses`, {
          nonce,
          answers: { a: 'x' },
        });
        assert.equal(replay.status, 409, replay.text);
        assert.equal(errorCode(replay), 'NONCE_INVALID');
      }
    }
    const fresh = dataOf<{ nonce: string }>(await visitor.get(`/api/v1/public/forms/${formA}`)).nonce;
    const spend = () =>
      visitor.post(`/api/v1/public/forms/${formA}/responses`, { nonce: fresh, answers: { a: 'x' } });
    assert.equal((await spend()).status, 201);
    assert.equal((await spend()).status, 409);
    // The database accepts a write fenced by a lock taken after the restart: its token is above
    // every token the database saw before.
    const lock = await owner.post(`/api/v1/forms/${formB}/lock`, undefined, { as: 'session-bearer' });
    assert.equal(lock.status, 200, lock.text);
    const written = await owner.request('PUT', `/api/v1/forms/${formB}`, {
      as: 'session-bearer',
      headers: { 'x-lock-token': dataOf<{ lock: { token: string } }>(lock).lock.token },
      body: { title: 'Consent, revised', fields: FIELDS },
    });
    assert.equal(written.status, 200, written.text);
  });
});
