/**
 * Redis faults under a running reference service with durable sessions (issue 10): Redis killed
 * and restarted without its data while clients keep signing in, validating, taking form locks and
 * spending public-form nonces; and a Redis that stalls (DEBUG SLEEP) under 50 requests in flight.
 * service-fleet.test.ts checks the degradation table once, without load; these check it under
 * load, across the whole outage, and what a stall does to latency and memory.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

import pg from 'pg';

import { RedisStore } from '../../gatehouse/src/store/redis.js';
import {
  startStandalone,
  uniquePrefix,
  waitFor,
  type Standalone,
} from '../../gatehouse/test/harness/topologies.js';
import { Client, freshEmail, type Answer } from './service/client.js';
import { createTestDatabase, startService, type RunningService } from './service/start.js';

const PASSWORD = 'correct horse battery staple';
const COMMAND_TIMEOUT_MS = 500;
const FIELDS = [{ name: 'a', label: 'A', type: 'text' }];

type TestDatabase = Awaited<ReturnType<typeof createTestDatabase>>;

function serviceEnv(redis: Standalone, databaseUrl: string): Record<string, string> {
  return {
    REDIS_URL: `redis://127.0.0.1:${String(redis.server.port)}`,
    REDIS_KEY_PREFIX: uniquePrefix(),
    REDIS_COMMAND_TIMEOUT: `${String(COMMAND_TIMEOUT_MS)}ms`,
    SESSION_DURABLE: 'true',
    DATABASE_URL: databaseUrl,
    SESSION_MAX_PER_USER: '1000',
    // The loops below are the load, not abuse: the limits stay out of their way.
    RATE_LIMIT_AUTH: '100000/1m',
    RATE_LIMIT_API: '100000/1m',
    RATE_LIMIT_PUBLIC: '100000/1m',
  };
}

/** The `data` of a success envelope, read as `T`. */
// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- a typed read of untyped JSON
function dataOf<T>(answer: Answer): T {
  return (answer.json as { data: T }).data;
}

function errorCode(answer: Answer): string | undefined {
  return (answer.json as { error?: { code?: string } }).error?.code;
}

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

async function createForm(owner: Client, title: string): Promise<string> {
  const created = await owner.post('/api/v1/forms', { title, fields: FIELDS }, { as: 'session-bearer' });
  assert.equal(created.status, 201, created.text);
  return dataOf<{ form: { id: string } }>(created).form.id;
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

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

/** `kind status: count` lines, sorted. */
function tally(items: ReadonlyArray<{ kind: string; status: number }>): string {
  const counts = new Map<string, number>();
  for (const item of items) {
    const key = `${item.kind} ${String(item.status)}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([key, count]) => `${key}: ${String(count)}`)
    .join(', ');
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

setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

/** Heap in use after a full collection: what the process keeps, without its garbage. */
function retainedHeap(): number {
  collectGarbage();
  return process.memoryUsage().heapUsed;
}

/** The RedisStore's own queue: calls waiting on Redis, and those of them past their deadline. */
interface StoreQueue {
  readonly inFlight: ReadonlySet<unknown>;
  readonly overdueCalls: number;
}

interface Sample {
  readonly atMs: number;
  readonly heapUsed: number;
  readonly inFlight: number;
  readonly overdue: number;
}

const KINDS = ['me', 'me-access', 'nonce-issue', 'nonce-spend', 'lock', 'ready'] as const;
type Kind = (typeof KINDS)[number];

interface Timed {
  readonly kind: Kind;
  readonly status: number;
  readonly code: string | undefined;
  readonly startMs: number;
  readonly endMs: number;
}

const CONCURRENCY = 50;
const STALL_SECONDS = 8;

describe('a stalled Redis (DEBUG SLEEP) under 50 requests in flight', { timeout: 120_000 }, () => {
  let redis: Standalone;
  let database: TestDatabase;
  let running: RunningService;

  before(async () => {
    redis = await startStandalone();
    database = await createTestDatabase();
    running = await startService(serviceEnv(redis, database.url));
  });

  after(async () => {
    await running.close();
    await redis.destroy();
    await database.drop();
  });

  it('answers within the command timeout, keeps its queue capped, and recovers by itself', async (t) => {
    const base = running.base;
    const store = running.service.context.gh.store;
    assert.ok(store instanceof RedisStore);
    const queue = store as unknown as StoreQueue;

    // Twenty sessions of five users, three forms of one organization, a pool of nonces.
    const emails = Array.from({ length: 5 }, () => freshEmail());
    for (const email of emails) await new Client(base).signUp(email);
    const sessions: Client[] = [];
    for (let i = 0; i < 20; i++) {
      const client = new Client(base);
      await client.signIn(emails[i % emails.length] ?? '');
      sessions.push(client);
    }
    const owner = sessions[0] as Client;
    const stallForm = await createForm(owner, 'Locked during the stall');
    const laterForm = await createForm(owner, 'Locked after the stall');
    const nonceForm = await createForm(owner, 'Public');
    const visitors = Array.from({ length: 10 }, () => new Client(base));
    const nonces: string[] = [];
    for (let i = 0; i < 200; i++) {
      const fetched = await (visitors[i % visitors.length] as Client).get(
        `/api/v1/public/forms/${nonceForm}`,
      );
      assert.equal(fetched.status, 200);
      nonces.push(dataOf<{ nonce: string }>(fetched).nonce);
    }

    const samples: Sample[] = [];
    const sampler = setInterval(() => {
      samples.push({
        atMs: performance.now(),
        heapUsed: process.memoryUsage().heapUsed,
        inFlight: queue.inFlight.size,
        overdue: queue.overdueCalls,
      });
    }, 50);

    const results: Timed[] = [];
    const accepted = new Map<string, number>();
    let stopping = false;
    const request = async (kind: Kind, worker: number): Promise<Answer> => {
      const session = sessions[worker % sessions.length] as Client;
      const visitor = visitors[worker % visitors.length] as Client;
      switch (kind) {
        case 'me':
          return session.get('/api/v1/me', { as: 'session-bearer' });
        case 'me-access':
          return session.get('/api/v1/me', { as: 'access-bearer' });
        case 'nonce-issue':
          return visitor.get(`/api/v1/public/forms/${nonceForm}`);
        case 'nonce-spend': {
          // A nonce answered 503 goes back to the pool: it may or may not have been spent.
          let nonce = nonces.shift();
          if (nonce === undefined) {
            const fetched = await visitor.get(`/api/v1/public/forms/${nonceForm}`);
            if (fetched.status !== 200) return fetched;
            nonce = dataOf<{ nonce: string }>(fetched).nonce;
          }
          const spent = await visitor.post(`/api/v1/public/forms/${nonceForm}/responses`, {
            nonce,
            answers: { a: 'x' },
          });
          if (spent.status === 201) accepted.set(nonce, (accepted.get(nonce) ?? 0) + 1);
          else if (spent.status === 503) nonces.push(nonce);
          return spent;
        }
        case 'lock': {
          const taken = await owner.post(`/api/v1/forms/${stallForm}/lock`, undefined, {
            as: 'session-bearer',
          });
          if (taken.status === 200) {
            const token = dataOf<{ lock: { token: string } }>(taken).lock.token;
            await owner.request('DELETE', `/api/v1/forms/${stallForm}/lock`, {
              as: 'session-bearer',
              headers: { 'x-lock-token': token },
            });
          }
          return taken;
        }
        case 'ready':
          return visitor.get('/ready');
      }
    };
    const worker = async (index: number): Promise<void> => {
      for (let n = index; !stopping; n++) {
        const kind = KINDS[n % KINDS.length] ?? 'me';
        const startMs = performance.now();
        const answer = await request(kind, index);
        const endMs = performance.now();
        results.push({ kind, status: answer.status, code: errorCode(answer), startMs, endMs });
        // About five requests a second per worker, unless answers are slower than that.
        await sleep(Math.max(0, 200 - (endMs - startMs)));
      }
    };

    const loops = Array.from({ length: CONCURRENCY }, (_, index) => worker(index));
    await sleep(1500);
    // Retained heap (after a full collection) before, twice during and after the stall: what the
    // stall makes the process keep, without the garbage the load itself makes.
    const retained: Record<'before' | 'early' | 'late' | 'after', number> = {
      before: retainedHeap(),
      early: 0,
      late: 0,
      after: 0,
    };
    const admin = await redis.admin();
    const stallStartMs = performance.now();
    const stall = admin.sendCommand(['DEBUG', 'SLEEP', String(STALL_SECONDS)]);
    await sleep(3000);
    retained.early = retainedHeap();
    await sleep((STALL_SECONDS - 4) * 1000);
    retained.late = retainedHeap();
    await stall;
    const stallEndMs = performance.now();
    admin.destroy();
    assert.ok(stallEndMs - stallStartMs >= STALL_SECONDS * 1000 - 100, 'the server stalled');
    await waitFor(
      'the service to be ready again',
      async () => (await owner.get('/ready')).status === 200,
      10_000,
    );
    const settledMs = performance.now();
    await sleep(2000);
    stopping = true;
    await Promise.all(loops);
    clearInterval(sampler);
    retained.after = retainedHeap();

    // Requests sent while the server slept, early enough that one waiting for it to wake up
    // would show a latency of over a second.
    const during = results.filter((r) => r.startMs >= stallStartMs && r.startMs < stallEndMs - 1000);
    const latencies = during.map((r) => r.endMs - r.startMs).sort((a, b) => a - b);
    const maxMs = latencies[latencies.length - 1] ?? 0;
    const stalled = samples.filter((s) => s.atMs >= stallStartMs && s.atMs < stallEndMs);
    const afterwards = samples.filter((s) => s.atMs >= settledMs);
    const peak = (list: readonly Sample[], of: (s: Sample) => number) => Math.max(0, ...list.map(of));
    const peakQueue = peak(stalled, (s) => s.inFlight);
    const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MB`;
    t.diagnostic(
      `stall ${((stallEndMs - stallStartMs) / 1000).toFixed(1)} s, ${String(during.length)} requests sent during it ` +
        `(${String(results.length)} in all): ${tally(during)}`,
    );
    t.diagnostic(
      `latency during the stall: p50 ${percentile(latencies, 50).toFixed(0)} ms, ` +
        `p99 ${percentile(latencies, 99).toFixed(0)} ms, max ${maxMs.toFixed(0)} ms`,
    );
    for (const kind of KINDS) {
      const own = during
        .filter((r) => r.kind === kind)
        .map((r) => r.endMs - r.startMs)
        .sort((a, b) => a - b);
      t.diagnostic(
        `  ${kind}: p50 ${percentile(own, 50).toFixed(0)} ms, max ${(own[own.length - 1] ?? 0).toFixed(0)} ms`,
      );
    }
    t.diagnostic(
      `retained heap: before ${mb(retained.before)}, 3 s into the stall ${mb(retained.early)}, ` +
        `${String(STALL_SECONDS - 1)} s into it ${mb(retained.late)}, after ${mb(retained.after)}; ` +
        `heapUsed peak during the stall ${mb(peak(stalled, (s) => s.heapUsed))}`,
    );
    t.diagnostic(
      `store queue: peak ${String(peakQueue)} calls (${String(peak(stalled, (s) => s.overdue))} overdue) ` +
        `during the stall, ${String(peak(afterwards, (s) => s.inFlight))} after; ` +
        `after the stall: ${tally(results.filter((r) => r.startMs >= settledMs))}`,
    );

    // Never a 500; every 5xx a well-formed 503 (/ready answers bare, without the envelope).
    assert.deepEqual(
      results.filter(
        (r) =>
          r.status >= 500 && !(r.status === 503 && (r.code === 'SERVICE_UNAVAILABLE' || r.kind === 'ready')),
      ),
      [],
    );
    // During the stall: sessions validate from SQL (durable mode), nonces and locks fail closed,
    // /ready says 503; each within the command timeout and a margin (for a loaded two-core
    // machine), not the stall's length, nor a timeout per Redis call the request makes: 'lock'
    // and 'me-access' make three, one after the other, which would take 1500 ms.
    assert.ok(during.length >= 200, `${String(during.length)} requests during the stall`);
    const expected: Record<Kind, number> = {
      me: 200,
      'me-access': 200,
      'nonce-issue': 503,
      'nonce-spend': 503,
      lock: 503,
      ready: 503,
    };
    for (const kind of KINDS) {
      const own = during.filter((r) => r.kind === kind);
      assert.ok(own.length > 0, `no ${kind} request during the stall`);
      assert.deepEqual(
        own.filter((r) => r.status !== expected[kind]),
        [],
        `${kind} during the stall`,
      );
    }
    assert.ok(maxMs < COMMAND_TIMEOUT_MS + 700, `a request took ${maxMs.toFixed(0)} ms during the stall`);
    // Memory: the store stops sending once a command is overdue, so its queue (and node-redis's,
    // which holds the same commands) stays at what was sent before, however many requests come;
    // and the process keeps no more for a stall of 8 s than of 3 s.
    assert.ok(peakQueue <= 4 * CONCURRENCY, `${String(peakQueue)} calls waiting on Redis`);
    assert.ok(peakQueue < during.length / 2);
    assert.ok(retained.late - retained.early < 16 * 2 ** 20, 'retained heap grew during the stall');
    assert.ok(retained.late - retained.before < 32 * 2 ** 20, 'retained heap grew with the stall');
    // After: the overdue replies came, and the same service answers normally, without a restart.
    assert.ok(afterwards.length > 0 && afterwards.every((s) => s.overdue === 0));
    assert.ok(peak(afterwards, (s) => s.inFlight) <= 4 * CONCURRENCY);
    // Nonces answered 503 went back to the pool; one that Redis spent when it woke up (a 503
    // does not say nothing happened) is refused after. Locks of the stall form are contended.
    const afterStall = results.filter((r) => r.startMs >= settledMs);
    const allowed: Record<Kind, readonly number[]> = {
      me: [200],
      'me-access': [200],
      'nonce-issue': [200],
      'nonce-spend': [201, 409],
      lock: [200, 409],
      ready: [200],
    };
    assert.ok(afterStall.length > 0);
    assert.deepEqual(
      afterStall.filter((r) => !allowed[r.kind].includes(r.status)),
      [],
    );
    assert.deepEqual(
      [...accepted.values()].filter((count) => count > 1),
      [],
    );
    for (const session of sessions.slice(0, 5)) {
      assert.equal((await session.get('/api/v1/me', { as: 'session-bearer' })).status, 200);
    }
    const visitor = new Client(base);
    const fresh = dataOf<{ nonce: string }>(await visitor.get(`/api/v1/public/forms/${nonceForm}`)).nonce;
    const spend = () =>
      visitor.post(`/api/v1/public/forms/${nonceForm}/responses`, { nonce: fresh, answers: { a: 'x' } });
    assert.equal((await spend()).status, 201);
    assert.equal((await spend()).status, 409);
    const lock = await owner.post(`/api/v1/forms/${laterForm}/lock`, undefined, { as: 'session-bearer' });
    assert.equal(lock.status, 200, lock.text);
  });
});
