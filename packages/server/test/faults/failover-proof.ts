/**
 * What a failover under load must show (packages/server/test/faults/failover.test.ts says
 * what and why): the load runs, the fault strikes, and every answer is judged by when it came,
 * given the kill and the recovery; then every session, the fencing of every lock and a full
 * round trip are checked after the window.
 */
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { waitFor } from '../../../gatehouse/test/harness/topologies.js';
import { Client, freshEmail, type Answer } from '../helpers/client.js';
import type { RunningService } from '../helpers/start-service.js';
import {
  errorCode,
  FIELDS,
  Load,
  lockOf,
  PASSWORD,
  type Acquire,
  type Op,
  type Outcome,
} from './failover-load.js';

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

export interface Fault {
  /** Kills a primary; resolves once it is dead. */
  kill(): Promise<void>;
  /** True once the topology has promoted a replica in its place. */
  promoted(): Promise<boolean>;
}

/**
 * Runs the load, the fault and every check on a service already started on the topology.
 * `prepareFault` runs just before the kill (a Cluster picks the primary that holds our keys).
 */
export async function proveFailover(
  t: TestContext,
  running: RunningService,
  prepareFault: () => Promise<Fault>,
) {
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
