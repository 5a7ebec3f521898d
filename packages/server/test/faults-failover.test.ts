/**
 * Proof under faults (issue 10): the reference service under load while its Redis fails over.
 * On Sentinel the primary is killed and the replica promoted; on Cluster one primary is killed
 * and its replica takes its slots. Client loops sign in, validate sessions, take, renew, write
 * and release the fenced edit locks of shared forms and spend public-form nonces the whole time,
 * and every answer is recorded with its time. Afterwards the record must show:
 *
 * - errors only inside a bounded failover window, and only 503 SERVICE_UNAVAILABLE: never a 500,
 *   never a 401 for a valid durable session (those validate from SQL meanwhile);
 * - full recovery without a restart: sign-in, validation, locks and nonces work again;
 * - every durable session signed in before or during the run is still valid;
 * - no two holders of one lock at once that the fencing tokens do not tell apart: tokens grow
 *   strictly in acquire order per form, no holder is confirmed (renewed or written) after a newer
 *   acquire, and the database refuses a write under an older token.
 *
 * Asynchronous replication may lose the last writes of a killed primary (shared/REDIS-NOTES.md):
 * a lock taken before the kill may vanish (its holder then gets 409 LOCKED), a nonce issued just
 * before the kill may be unknown afterwards (409 NONCE_INVALID). Both are counted as "lost" and
 * allowed only for locks taken and nonces issued before the window closed. An acquire that
 * answered 503 may still have taken its lock (Sentinel clients hold commands through a failover
 * and run them on the new primary): gatehouse gives such a lock back once Redis answers, which
 * the last test shows on its own.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { KeyRing } from '../../gatehouse/src/crypto/keyring.js';
import { StoreUnavailableError } from 'gatehouse';
import { Locks } from '../../gatehouse/src/locks/locks.js';
import { MemoryStore } from '../../gatehouse/src/store/memory.js';
import type { LockAcquireResult } from '../../gatehouse/src/store/store.js';
import type { RedisServer } from '../../gatehouse/test/harness/redis-server.js';
import {
  redisCli,
  SENTINEL_NAME,
  startCluster,
  startSentinelSet,
  uniquePrefix,
  waitFor,
  type Cluster,
  type SentinelSet,
} from '../../gatehouse/test/harness/topologies.js';
import { Client, freshEmail, type Answer } from './service/client.js';
import { createTestDatabase, startService, type RunningService } from './service/start.js';

const PASSWORD = 'correct horse battery staple';
/** Errors must start and end within this long after the kill, and the service must be back. */
const WINDOW_BOUND_MS = 15_000;
const WORKERS = 4;
/** Fewer forms than workers: the loops contend for the same locks. */
const SHARED_FORMS = 3;
const LOAD_BEFORE_KILL_MS = 3000;
const LOAD_AFTER_RECOVERY_MS = 4000;
/**
 * A nonce issued longer than this before the kill was on the replica already (loopback
 * replication takes milliseconds): only younger ones may be lost.
 */
const REPLICATION_MARGIN_MS = 2000;
/** Longest a request may take, failover or not (a loaded machine included). */
const MAX_ANSWER_MS = 5000;
const FIELDS = [{ name: 'a', label: 'A', type: 'text' }] as const;

type Op = 'signin' | 'me' | 'form' | 'lock' | 'renew' | 'put' | 'unlock' | 'nonce-issue' | 'nonce-use';

interface Outcome {
  readonly op: Op;
  readonly status: number;
  readonly code: string;
  readonly startMs: number;
  readonly endMs: number;
  readonly detail: string;
  /** Locks: when the lock was acquired; nonce-use: when the nonce was issued. */
  readonly sinceMs: number | undefined;
}

interface Acquire {
  readonly form: string;
  readonly owner: string;
  readonly token: string;
  readonly fence: number;
  readonly startMs: number;
  readonly endMs: number;
}

/** A successful renewal or write under a lock: Redis confirmed the holder then. */
interface Confirm {
  readonly op: 'renew' | 'put';
  readonly form: string;
  readonly token: string;
  readonly fence: number;
  readonly startMs: number;
  readonly endMs: number;
}

interface SignedIn {
  readonly owner: string;
  readonly client: Client;
  readonly sessionId: string;
  readonly signedInMs: number;
}

interface LockBody {
  readonly data: { readonly lock: { readonly token: string; readonly fencingToken: number } };
}

interface SignInBody {
  readonly data: {
    readonly sessionToken: string;
    readonly accessToken: string;
    readonly csrfToken: string;
    readonly session: { readonly id: string };
    readonly user: { readonly id: string; readonly email: string; readonly organizationId: string };
  };
}

function errorCode(answer: Answer): string {
  return (answer.json as { error?: { code?: string } }).error?.code ?? '';
}

function lockOf(answer: Answer): { token: string; fence: number } {
  const { token, fencingToken } = (answer.json as LockBody).data.lock;
  return { token, fence: fencingToken };
}

/** The whole record of one run, and the client loops that make it. */
class Load {
  readonly outcomes: Outcome[] = [];
  readonly acquires: Acquire[] = [];
  readonly confirms: Confirm[] = [];
  readonly sessions: SignedIn[] = [];
  stopped = false;

  constructor(readonly base: string) {}

  async call(op: Op, send: () => Promise<Answer>, sinceMs?: number): Promise<Answer | undefined> {
    const startMs = Date.now();
    try {
      const answer = await send();
      this.outcomes.push({
        op,
        status: answer.status,
        code: errorCode(answer),
        startMs,
        endMs: Date.now(),
        detail: answer.status >= 400 ? answer.text.slice(0, 300) : '',
        sinceMs,
      });
      return answer;
    } catch (error) {
      // The service did not answer at all (a crash, a reset connection): never acceptable.
      this.outcomes.push({
        op,
        status: 0,
        code: 'NO_ANSWER',
        startMs,
        endMs: Date.now(),
        detail: String(error),
        sinceMs,
      });
      return undefined;
    }
  }

  /** A new session for `email`, recorded; undefined when sign-in did not answer 200. */
  async signIn(owner: string, email: string): Promise<Client | undefined> {
    const client = new Client(this.base);
    const answer = await this.call('signin', () =>
      client.post('/api/v1/auth/signin', { email, password: PASSWORD }),
    );
    if (answer?.status !== 200) return undefined;
    const data = (answer.json as SignInBody).data;
    Object.assign(client, {
      sessionToken: data.sessionToken,
      accessToken: data.accessToken,
      csrfToken: data.csrfToken,
      sessionId: data.session.id,
      user: { ...data.user, roles: [] },
    });
    this.sessions.push({ owner, client, sessionId: data.session.id, signedInMs: Date.now() });
    return client;
  }

  /** GET /api/v1/me; a 200 for another session than asked is recorded as an error of its own. */
  async validate(client: Client, as: 'cookie' | 'session-bearer' | 'access-bearer'): Promise<boolean> {
    const answer = await this.call('me', () => client.get('/api/v1/me', { as }));
    if (answer?.status !== 200) return false;
    const id = (answer.json as { data: { session: { id: string } } }).data.session.id;
    if (id === client.sessionId) return true;
    this.outcomes.push({
      op: 'me',
      status: -1,
      code: 'WRONG_SESSION',
      startMs: Date.now(),
      endMs: Date.now(),
      detail: `${id} for ${String(client.sessionId)}`,
      sinceMs: undefined,
    });
    return false;
  }

  private recordAcquire(form: string, owner: string, answer: Answer, startMs: number): Acquire {
    const { token, fence } = lockOf(answer);
    const acquire = { form, owner, token, fence, startMs, endMs: Date.now() };
    this.acquires.push(acquire);
    return acquire;
  }

  /**
   * One edit-lock cycle on `form`: take, renew with X-Lock-Token, write under it, release.
   * Returns whether every step answered as it does with Redis up (a refusal while another
   * holds it included); releases that may not have happened are left in `unreleased`.
   */
  async lockCycle(
    client: Client,
    owner: string,
    form: string,
    unreleased: Array<{ form: string; acquire: Acquire }>,
  ): Promise<boolean> {
    const path = `/api/v1/forms/${form}/lock`;
    const startMs = Date.now();
    const taken = await this.call('lock', () => client.post(path, undefined, { as: 'session-bearer' }));
    if (taken?.status === 409) return true;
    if (taken?.status !== 200) return false;
    let held: Acquire | undefined = this.recordAcquire(form, owner, taken, startMs);
    let healthy = true;

    const renewStart = Date.now();
    const renewed = await this.call(
      'renew',
      () =>
        client.post(path, undefined, {
          as: 'session-bearer',
          headers: { 'x-lock-token': held?.token ?? '' },
        }),
      held.startMs,
    );
    if (renewed?.status === 200) {
      const lock = lockOf(renewed);
      if (lock.token === held.token) {
        this.confirms.push({
          op: 'renew',
          form,
          token: lock.token,
          fence: lock.fence,
          startMs: renewStart,
          endMs: Date.now(),
        });
        if (lock.fence !== held.fence) {
          this.outcomes.push({
            op: 'renew',
            status: -1,
            code: 'FENCE_CHANGED_ON_RENEW',
            startMs: renewStart,
            endMs: Date.now(),
            detail: `${String(held.fence)} -> ${String(lock.fence)}`,
            sinceMs: held.startMs,
          });
        }
      } else {
        // The lock was gone and free: the stale token got a new lock, which is an acquire.
        held = this.recordAcquire(form, owner, renewed, renewStart);
      }
    } else {
      healthy = false;
      if (renewed?.status === 409) held = undefined;
    }
    if (!held) return false;
    const lock: Acquire = held;

    const putStart = Date.now();
    const written = await this.call(
      'put',
      () =>
        client.request('PUT', `/api/v1/forms/${form}`, {
          as: 'session-bearer',
          body: { title: `${owner} fence ${String(lock.fence)}`, fields: FIELDS },
          headers: { 'x-lock-token': lock.token },
        }),
      lock.startMs,
    );
    if (written?.status === 200) {
      this.confirms.push({
        op: 'put',
        form,
        token: lock.token,
        fence: lock.fence,
        startMs: putStart,
        endMs: Date.now(),
      });
    } else {
      healthy = false;
    }
    if (!(await this.release(client, form, lock))) {
      healthy = false;
      unreleased.push({ form, acquire: lock });
    }
    return healthy;
  }

  /** DELETE the lock; false when the answer leaves it unknown whether it was released. */
  async release(client: Client, form: string, lock: Acquire): Promise<boolean> {
    const answer = await this.call(
      'unlock',
      () =>
        client.request('DELETE', `/api/v1/forms/${form}/lock`, {
          as: 'session-bearer',
          headers: { 'x-lock-token': lock.token },
        }),
      lock.startMs,
    );
    // 409: it was lost and someone else holds it now: nothing of ours left to release.
    return answer?.status === 204 || answer?.status === 409;
  }

  /** Issues a nonce for `form` and spends it once. */
  async nonceCycle(visitor: Client, form: string): Promise<boolean> {
    const page = await this.call('nonce-issue', () => visitor.get(`/api/v1/public/forms/${form}`));
    if (page?.status !== 200) return false;
    const issuedMs = Date.now();
    const { nonce } = (page.json as { data: { nonce: string } }).data;
    const used = await this.call(
      'nonce-use',
      () => visitor.post(`/api/v1/public/forms/${form}/responses`, { nonce, answers: { a: 'x' } }),
      issuedMs,
    );
    return used?.status === 201;
  }

  async createForm(client: Client, title: string): Promise<string | undefined> {
    const answer = await this.call('form', () =>
      client.post('/api/v1/forms', { title, fields: FIELDS }, { as: 'session-bearer' }),
    );
    if (answer?.status !== 201) return undefined;
    return (answer.json as { data: { form: { id: string } } }).data.form.id;
  }

  /** One client loop: sign in now and then, validate old and new sessions, locks, nonces. */
  async worker(index: number, email: string, forms: readonly string[]): Promise<void> {
    const owner = `w${String(index)}`;
    const visitor = new Client(this.base);
    const unreleased: Array<{ form: string; acquire: Acquire }> = [];
    let current: Client | undefined;
    for (let round = 0; !this.stopped; round++) {
      if (round % 4 === 0 || !current) current = (await this.signIn(owner, email)) ?? current;
      const mine = this.sessions.filter((session) => session.owner === owner);
      const older = mine[Math.floor(Math.random() * mine.length)];
      if (current) {
        await this.validate(
          current,
          (['cookie', 'session-bearer', 'access-bearer'] as const)[round % 3] ?? 'cookie',
        );
        if (older) await this.validate(older.client, 'session-bearer');
        // Releases that answered 503 are retried until they are known to be done.
        for (const pending of unreleased.splice(0)) {
          if (!(await this.release(current, pending.form, pending.acquire))) unreleased.push(pending);
        }
        const form = forms[(index + round) % forms.length];
        if (form !== undefined) await this.lockCycle(current, owner, form, unreleased);
      }
      const form = forms[round % forms.length];
      if (form !== undefined) await this.nonceCycle(visitor, form);
      await sleep(5 + Math.random() * 20);
    }
    // Done: what this loop may still hold is released (Redis is back by now).
    for (let attempt = 0; unreleased.length > 0 && current && attempt < 20; attempt++) {
      for (const pending of unreleased.splice(0)) {
        if (!(await this.release(current, pending.form, pending.acquire))) unreleased.push(pending);
      }
      if (unreleased.length > 0) await sleep(250);
    }
  }

  /**
   * Everything a user does, once, on a fresh form (a lock whose 503 acquire still happened on
   * the server would block its form for the lock's TTL): true when every step answered as with
   * Redis up.
   */
  async roundTrip(email: string, label: string): Promise<boolean> {
    const client = await this.signIn(label, email);
    if (!client) return false;
    if (!(await this.validate(client, 'session-bearer'))) return false;
    const form = await this.createForm(client, `${label} round trip`);
    if (form === undefined) return false;
    const unreleased: Array<{ form: string; acquire: Acquire }> = [];
    const before = this.acquires.length;
    if (!(await this.lockCycle(client, label, form, unreleased))) return false;
    if (this.acquires.length === before) return false;
    return this.nonceCycle(new Client(this.base), form);
  }
}

interface Verdict {
  readonly kind: 'ok' | 'degraded' | 'lost' | 'unexpected';
  readonly outcome: Outcome;
}

const OK_STATUS: Record<Op, readonly number[]> = {
  signin: [200],
  me: [200],
  form: [201],
  lock: [200, 409],
  renew: [200],
  put: [200],
  unlock: [204],
  'nonce-issue': [200],
  'nonce-use': [201],
};

/**
 * ok: what Redis being up gives; degraded: 503 SERVICE_UNAVAILABLE after the kill (never for
 * GET /me: a durable session validates from SQL while Redis is away); lost: a lock or nonce that
 * asynchronous replication may have lost; anything else is unexpected.
 */
function judge(outcome: Outcome, killAtMs: number, windowEndMs: number): Verdict {
  const { op, status, code, sinceMs } = outcome;
  if (OK_STATUS[op].includes(status) && (status !== 409 || code === 'LOCKED')) return { kind: 'ok', outcome };
  if (status === 503 && code === 'SERVICE_UNAVAILABLE' && outcome.endMs >= killAtMs && op !== 'me')
    return { kind: 'degraded', outcome };
  const lockTakenBeforeWindowEnd =
    (op === 'renew' || op === 'put' || op === 'unlock') && sinceMs !== undefined && sinceMs <= windowEndMs;
  if (status === 409 && code === 'LOCKED' && lockTakenBeforeWindowEnd) return { kind: 'lost', outcome };
  const nonceIssuedNearKill =
    op === 'nonce-use' &&
    sinceMs !== undefined &&
    sinceMs >= killAtMs - REPLICATION_MARGIN_MS &&
    sinceMs <= windowEndMs;
  if (status === 409 && code === 'NONCE_INVALID' && nonceIssuedNearKill) return { kind: 'lost', outcome };
  return { kind: 'unexpected', outcome };
}

function countBy<T>(items: readonly T[], key: (item: T) => string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const item of items) counts[key(item)] = (counts[key(item)] ?? 0) + 1;
  return counts;
}

function describeOutcome(outcome: Outcome, killAtMs: number): string {
  return `${outcome.op} ${String(outcome.status)} ${outcome.code} at kill${outcome.startMs >= killAtMs ? '+' : ''}${String(outcome.startMs - killAtMs)}ms..${String(outcome.endMs - killAtMs)}ms ${outcome.detail}`;
}

interface Fault {
  /** Kills a primary; resolves once it is dead. */
  kill(): Promise<void>;
  /** True once the topology has promoted a replica in its place. */
  promoted(): Promise<boolean>;
}

/**
 * Runs the load, the fault and every check on a service already started on the topology.
 * `prepareFault` runs just before the kill (a Cluster picks the primary that holds our keys).
 */
async function proveFailover(t: TestContext, running: RunningService, prepareFault: () => Promise<Fault>) {
  const load = new Load(running.base);
  const { base } = running;

  // Setup with Redis up: one organization, its shared forms, a user per loop, and a prober.
  const ownerEmail = freshEmail();
  await new Client(base).signUp(ownerEmail, PASSWORD);
  const owner = await load.signIn('owner', ownerEmail);
  assert.ok(owner, 'the owner signs in');
  const emails: string[] = [];
  for (let i = 0; i < WORKERS; i++) {
    const invite: Answer = await owner.post('/api/v1/organizations/invites', undefined, {
      as: 'session-bearer',
    });
    assert.equal(invite.status, 201, invite.text);
    const email = freshEmail();
    await new Client(base).signUp(
      email,
      PASSWORD,
      (invite.json as { data: { inviteCode: string } }).data.inviteCode,
    );
    emails.push(email);
  }
  const proberEmail = freshEmail();
  await new Client(base).signUp(proberEmail, PASSWORD);
  const forms: string[] = [];
  for (let i = 0; i < SHARED_FORMS; i++) {
    const form = await load.createForm(owner, `Shared ${String(i)}`);
    assert.ok(form !== undefined, 'a shared form');
    forms.push(form);
  }
  assert.ok(await load.roundTrip(proberEmail, 'probe'), 'everything works before the fault');

  const loops = emails.map((email, index) => load.worker(index, email, forms));
  let killAtMs = Number.POSITIVE_INFINITY;
  let promotedAtMs = Number.NaN;
  let recoveredAtMs = Number.NaN;
  let probes = 0;
  try {
    await sleep(LOAD_BEFORE_KILL_MS);
    const fault = await prepareFault();
    killAtMs = Date.now();
    await fault.kill();
    const promotion = waitFor('a replica promoted', () => fault.promoted(), 30_000).then(
      () => {
        promotedAtMs = Date.now();
        return undefined;
      },
      (error: unknown) => (error instanceof Error ? error : new Error(String(error))),
    );
    // Recovery: the first whole round trip that goes through after the promotion (on a Cluster,
    // keys on the other primaries answer until the cluster notices the dead node).
    const deadline = killAtMs + 30_000;
    for (;;) {
      probes++;
      const startedMs = Date.now();
      if ((await load.roundTrip(proberEmail, 'probe')) && startedMs >= promotedAtMs) break;
      assert.ok(Date.now() < deadline, 'the service did not recover within 30 s of the kill');
      await sleep(200);
    }
    recoveredAtMs = Date.now();
    const promotionFailure = await promotion;
    if (promotionFailure !== undefined) throw promotionFailure;
    // The load goes on until it has run this long without a 503, so recovery is shown under load.
    for (;;) {
      const lastErrorMs = Math.max(
        recoveredAtMs,
        ...load.outcomes.filter((outcome) => outcome.status === 503).map((outcome) => outcome.endMs),
      );
      if (Date.now() - lastErrorMs >= LOAD_AFTER_RECOVERY_MS || Date.now() > deadline) break;
      await sleep(250);
    }
  } finally {
    load.stopped = true;
    await Promise.all(loops);
  }

  // What each answer means, given when the fault happened and when the service was back.
  const firstVerdicts = load.outcomes.map((outcome) => judge(outcome, killAtMs, recoveredAtMs));
  const lastDegradedEndMs = Math.max(
    recoveredAtMs,
    ...firstVerdicts.filter((verdict) => verdict.kind === 'degraded').map((verdict) => verdict.outcome.endMs),
  );
  const verdicts = load.outcomes.map((outcome) => judge(outcome, killAtMs, lastDegradedEndMs));
  const of = (kind: Verdict['kind']) =>
    verdicts.filter((verdict) => verdict.kind === kind).map((v) => v.outcome);
  const degraded = of('degraded');
  const lost = of('lost');
  const unexpected = of('unexpected');
  const firstErrorMs = Math.min(...degraded.map((outcome) => outcome.startMs));
  const windowMs = lastDegradedEndMs - killAtMs;
  t.diagnostic(
    `kill -> promoted ${String(promotedAtMs - killAtMs)} ms, -> recovered ${String(recoveredAtMs - killAtMs)} ms ` +
      `(${String(probes)} probes); errors from kill+${String(firstErrorMs - killAtMs)} ms, window ${String(windowMs)} ms`,
  );
  t.diagnostic(
    `requests ${String(load.outcomes.length)}: ${JSON.stringify(countBy(load.outcomes, (o) => `${o.op} ${String(o.status)}`))}`,
  );
  t.diagnostic(
    `503 by op: ${JSON.stringify(countBy(degraded, (o) => o.op))}; lost: ${JSON.stringify(countBy(lost, (o) => `${o.op} ${o.code}`))}`,
  );

  const slowest = load.outcomes.reduce((a, b) => (b.endMs - b.startMs > a.endMs - a.startMs ? b : a));
  t.diagnostic(`slowest answer: ${describeOutcome(slowest, killAtMs)}`);
  assert.deepEqual(
    unexpected.map((outcome) => describeOutcome(outcome, killAtMs)),
    [],
    'only 503 SERVICE_UNAVAILABLE after the kill (no 500, no 401 for a live session, no lost answer)',
  );
  assert.ok(degraded.length > 0, 'the fault was felt: some requests answered 503');
  assert.ok(
    windowMs < WINDOW_BOUND_MS,
    `errors and recovery within ${String(WINDOW_BOUND_MS)} ms of the kill: ${String(windowMs)} ms`,
  );
  // Fail fast: a request waits for at most a few Redis deadlines (500 ms each), never for the failover.
  assert.ok(
    slowest.endMs - slowest.startMs < MAX_ANSWER_MS,
    `no request hangs: ${describeOutcome(slowest, killAtMs)}`,
  );
  const afterWindow = (op: Op) =>
    verdicts.filter(
      (verdict) =>
        verdict.outcome.op === op &&
        verdict.outcome.status === OK_STATUS[op][0] &&
        verdict.outcome.startMs > lastDegradedEndMs,
    ).length;
  for (const op of ['signin', 'me', 'lock', 'renew', 'put', 'unlock', 'nonce-use'] as const) {
    assert.ok(afterWindow(op) > 0, `${op} works again under load after the window`);
  }

  // Every durable session signed in before or during the run is still valid.
  let validated = 0;
  for (const signedIn of load.sessions) {
    for (const as of ['session-bearer', 'access-bearer'] as const) {
      const me = await signedIn.client.get('/api/v1/me', { as });
      assert.equal(
        me.status,
        200,
        `${signedIn.owner}'s session from kill${String(signedIn.signedInMs - killAtMs)} ms by ${as}: ${me.text}`,
      );
      assert.equal((me.json as { data: { session: { id: string } } }).data.session.id, signedIn.sessionId);
      validated++;
    }
  }
  const sessionsDuring = load.sessions.filter(
    (s) => s.signedInMs >= killAtMs && s.signedInMs <= lastDegradedEndMs,
  ).length;
  t.diagnostic(
    `sessions signed in ${String(load.sessions.length)} (${String(sessionsDuring)} within the window), all valid after (${String(validated)} checks)`,
  );

  // Fencing: per form, tokens grow strictly in acquire order, and no holder is confirmed after a
  // newer acquire of the same form (two holders at once would show here).
  const byForm = new Map<string, Acquire[]>();
  for (const acquire of load.acquires)
    byForm.set(acquire.form, [...(byForm.get(acquire.form) ?? []), acquire]);
  const violations: string[] = [];
  for (const [form, acquires] of byForm) {
    if (new Set(acquires.map((a) => a.fence)).size !== acquires.length)
      violations.push(`${form}: a fencing token handed out twice`);
    for (const a of acquires) {
      for (const b of acquires) {
        if (a.endMs < b.startMs && a.fence >= b.fence)
          violations.push(
            `${form}: ${a.owner} got ${String(a.fence)}, then ${b.owner} got ${String(b.fence)}`,
          );
      }
    }
    for (const confirm of load.confirms.filter((c) => c.form === form)) {
      const newer = acquires.find((a) => a.fence > confirm.fence && a.endMs < confirm.startMs);
      if (newer)
        violations.push(
          `${form}: ${confirm.op} under ${String(confirm.fence)} after ${newer.owner} took ${String(newer.fence)}`,
        );
    }
    // The database has seen the newest acquire of the form (no acquire was answered unseen).
    const { rows } = await running.service.context.db.query('SELECT fence FROM forms WHERE id = $1', [form]);
    const stored = Number((rows[0] as { fence: string | number } | undefined)?.fence);
    const newest = Math.max(...acquires.map((a) => a.fence));
    if (stored !== newest)
      violations.push(
        `${form}: the database fence is ${String(stored)}, the newest acquire ${String(newest)}`,
      );
  }
  assert.deepEqual(violations, []);
  const contended = [...byForm.entries()].filter(([form]) => forms.includes(form));
  t.diagnostic(
    `locks: ${String(load.acquires.length)} acquires (${contended.map(([, a]) => a.length).join('/')} on the shared forms, ` +
      `${contended.map(([, a]) => a.filter((acquire) => acquire.startMs > lastDegradedEndMs).length).join('/')} after the window), ` +
      `${String(load.confirms.length)} confirmed renewals and writes, all fenced in order`,
  );
  assert.ok(
    contended.every(([, acquires]) => acquires.length >= 2),
    'every shared form changed hands',
  );
  // Every loop has released what it held, and no lock is left behind on a shared form by an
  // acquire that answered 503 but still happened on the server: free within seconds, not after
  // the lock's 2-minute TTL.
  for (const form of forms) {
    const path = `/api/v1/forms/${form}/lock`;
    let last: Answer | undefined;
    await waitFor(
      `the lock of shared form ${form} to be free`,
      async () => {
        last = await owner.post(path, undefined, { as: 'session-bearer' });
        return last.status === 200;
      },
      5000,
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}: ${String(last?.text)}`);
    });
    assert.ok(last);
    const release = await owner.request('DELETE', path, {
      as: 'session-bearer',
      headers: { 'x-lock-token': lockOf(last).token },
    });
    assert.equal(release.status, 204);
  }

  // After recovery: an older token cannot write once a newer holder has the lock, and the
  // database refuses the older fencing token by itself.
  const first = await load.signIn('fence-a', emails[0] ?? '');
  const second = await load.signIn('fence-b', emails[1] ?? '');
  assert.ok(first && second);
  const form = await load.createForm(first, 'Fencing');
  assert.ok(form !== undefined);
  const path = `/api/v1/forms/${form}/lock`;
  const older = await first.post(path, undefined, { as: 'session-bearer' });
  assert.equal(older.status, 200, older.text);
  const olderLock = lockOf(older);
  const release = await first.request('DELETE', path, {
    as: 'session-bearer',
    headers: { 'x-lock-token': olderLock.token },
  });
  assert.equal(release.status, 204);
  const newer = await second.post(path, undefined, { as: 'session-bearer' });
  assert.equal(newer.status, 200, newer.text);
  const newerLock = lockOf(newer);
  assert.ok(newerLock.fence > olderLock.fence);
  const stale = await first.request('PUT', `/api/v1/forms/${form}`, {
    as: 'session-bearer',
    body: { title: 'stale', fields: FIELDS },
    headers: { 'x-lock-token': olderLock.token },
  });
  assert.equal(stale.status, 409, stale.text);
  assert.equal(errorCode(stale), 'LOCKED');
  // The route's own fenced statement, with the older token: refused by the database.
  const fenced = await running.service.context.db.query(
    `UPDATE forms SET title = $2, fence = $3, updated_at = now() WHERE id = $1 AND fence <= $3 RETURNING id`,
    [form, 'stale', olderLock.fence],
  );
  assert.equal(fenced.rows.length, 0, 'the database refuses an older fencing token');
  const current = await second.request('PUT', `/api/v1/forms/${form}`, {
    as: 'session-bearer',
    body: { title: 'current', fields: FIELDS },
    headers: { 'x-lock-token': newerLock.token },
  });
  assert.equal(current.status, 200, current.text);
  const reread = await second.get(`/api/v1/forms/${form}`, { as: 'session-bearer' });
  assert.equal((reread.json as { data: { form: { title: string } } }).data.form.title, 'current');

  // And the whole round trip, once more, with the load gone.
  assert.ok(await load.roundTrip(proberEmail, 'final'), 'a full round trip after the run');
  assert.equal((await new Client(base).get('/ready')).status, 200);
  const health = await new Client(base).get('/health');
  assert.equal((health.json as { status: string }).status, 'healthy', health.text);
}

function serviceEnv(databaseUrl: string): Record<string, string> {
  return {
    REDIS_KEY_PREFIX: uniquePrefix(),
    DATABASE_URL: databaseUrl,
    SESSION_DURABLE: 'true',
    // The loops sign in and call far more often than one user's defaults allow.
    SESSION_MAX_PER_USER: '1000',
    RATE_LIMIT_AUTH: '100000/1m+1000',
    RATE_LIMIT_API: '100000/1m+1000',
    RATE_LIMIT_PUBLIC: '100000/1m+1000',
  };
}

describe('Sentinel failover under load', { timeout: 120_000 }, () => {
  let set: SentinelSet;
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let running: RunningService;

  before(async () => {
    [set, database] = await Promise.all([startSentinelSet(), createTestDatabase()]);
    running = await startService({
      ...serviceEnv(database.url),
      REDIS_SENTINELS: set.connection.sentinels.map((node) => `${node.host}:${String(node.port)}`).join(','),
      REDIS_SENTINEL_NAME: SENTINEL_NAME,
    });
  });

  after(async () => {
    await running.close();
    await set.destroy();
    await database.drop();
  });

  it('answers only 503 within the window, recovers, keeps every session, and fences every lock', async (t) => {
    await proveFailover(t, running, () =>
      Promise.resolve({
        kill: () => set.primary.kill(),
        promoted: async () => (await set.currentPrimaryPort()) === set.replica.port,
      }),
    );
  });
});

describe('Cluster primary killed under load', { timeout: 120_000 }, () => {
  let cluster: Cluster;
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let running: RunningService;

  before(async () => {
    [cluster, database] = await Promise.all([startCluster(), createTestDatabase()]);
    running = await startService({
      ...serviceEnv(database.url),
      REDIS_CLUSTER_NODES: cluster.connection.nodes
        .map((node) => `${node.host}:${String(node.port)}`)
        .join(','),
    });
  });

  after(async () => {
    await running.close();
    await cluster.destroy();
    await database.drop();
  });

  it('answers only 503 within the window, recovers, keeps every session, and fences every lock', async (t) => {
    const prefix = running.service.context.config.keyPrefix;
    await proveFailover(t, running, async () => {
      // The primary that holds the most of this run's locks (then keys): the fault hits the load.
      const primaries = await cluster.primaryPorts();
      const weights = await Promise.all(
        primaries.map(async (port) => {
          const locks = await redisCli(port, ['--scan', '--pattern', `${prefix}:lock.v1:*`]);
          const all = await redisCli(port, ['--scan', '--pattern', `${prefix}:*`]);
          return locks.length * 1000 + all.length;
        }),
      );
      const victimPort = primaries[weights.indexOf(Math.max(...weights))];
      const victim: RedisServer | undefined = cluster.nodes.find((node) => node.port === victimPort);
      assert.ok(victim);
      return {
        kill: () => victim.kill(),
        promoted: async () => {
          const now = await cluster.primaryPorts();
          if (now.length !== 3) return false;
          const info = await redisCli(now[0] ?? 0, ['cluster', 'info']);
          return info.some((line) => line.trim() === 'cluster_state:ok');
        },
      };
    });
  });
});

/** A store that takes the first lock it is asked for but loses the reply, as a failover can. */
class LostReplyStore extends MemoryStore {
  dropped = 0;

  override async lockAcquire(
    resourceId: string,
    ownerId: string,
    ttlMs: number,
    holder: string,
  ): Promise<LockAcquireResult> {
    const result = await super.lockAcquire(resourceId, ownerId, ttlMs, holder);
    if (this.dropped > 0) return result;
    this.dropped++;
    throw new StoreUnavailableError('Redis is not answering (the reply was lost)');
  }
}

describe('a lock acquire that answered 503 but took the lock on the server', () => {
  it('is given back once the store answers, instead of blocking the resource for its TTL', async () => {
    const locks = new Locks(new LostReplyStore({ keyPrefix: uniquePrefix() }), KeyRing.random());
    await assert.rejects(locks.tryAcquire('form:edit', { ttl: '2m' }), StoreUnavailableError);
    // Held by an owner token nobody has...
    const refused = await locks.tryAcquire('form:edit', { ttl: '2m' });
    assert.equal(refused.acquired, false);
    // ...for a moment, not for two minutes.
    await waitFor(
      'the lock to be given back',
      async () => (await locks.tryAcquire('form:edit')).acquired,
      5000,
    );
  });
});
