/**
 * A Redis that stalls (DEBUG SLEEP) under 50 requests in flight to a reference service with
 * durable sessions: every request answers within the command timeout and a margin (sessions from
 * SQL, nonces and locks 503), the store's queue and the retained heap stay bounded, and the same
 * service answers normally once Redis wakes, without a restart.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

import { RedisStore } from '../../../gatehouse/src/store/redis/store.js';
import { startStandalone, waitFor, type Standalone } from '../../../gatehouse/test/harness/topologies.js';
import { Client, freshEmail, type Answer } from '../helpers/client.js';
import { createTestDatabase, startService, type RunningService } from '../helpers/start-service.js';
import {
  COMMAND_TIMEOUT_MS,
  createForm,
  dataOf,
  errorCode,
  serviceEnv,
  tally,
  type TestDatabase,
} from './redis-faults.js';

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

/** Heap in use after a full collection: what the process keeps, without its garbage. */
function retainedHeap(): number {
  collectGarbage();
  return process.memoryUsage().heapUsed;
}

/** The RedisStore's own queue: calls waiting on Redis, and those of them past their deadline. */
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
        ...store.pendingCalls(),
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
