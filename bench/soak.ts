/**
 * The soak test (`npm run soak`, not part of `npm test`): the reference service, as a child
 * process on a redis-server started here and PostgreSQL (PGlite when there is none), under
 * steady load for 5 minutes: sign-ins (and sign-outs), session validations, CSRF-checked writes,
 * form edits under the fenced lock, public submissions with single-use nonces, PDF renders under
 * the per-response lock, and a client that keeps getting refused by the sign-in rate limit.
 *
 * Every 10 s it samples the service's heap, resident memory and event-loop delay (from /metrics)
 * and the Redis server's memory, and at the end compares the last minute with the second (the
 * first is warm-up), then writes the figures into bench/RESULTS.md (between the soak markers,
 * which `npm run bench` keeps).
 *
 * Options: --duration-s N (default 300), --sample-s N (default 10), --users N (default 40).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';

import { createClient } from '@redis/client';

import { freePort, RedisServer } from '../packages/gatehouse/test/harness/redis-server.js';
import { createScratchDatabase } from './database.js';
import { median } from './measure.js';
import { SOAK_BEGIN, SOAK_END } from './soak-markers.js';
import { TYPESCRIPT_NODE_ARGS } from '../packages/gatehouse/test/harness/typescript.js';

const { values } = parseArgs({
  options: {
    'duration-s': { type: 'string', default: '300' },
    'sample-s': { type: 'string', default: '10' },
    users: { type: 'string', default: '40' },
  },
});
const durationMs = Number(values['duration-s']) * 1000;
const sampleMs = Number(values['sample-s']) * 1000;
const userCount = Number(values.users);
if (!(durationMs >= 60_000 && sampleMs >= 1000 && userCount >= 1)) {
  throw new Error('--duration-s must be at least 60, --sample-s at least 1, --users at least 1');
}

const PASSWORD = 'correct horse battery staple';
const FIELDS = [
  { name: 'name', label: 'Name', type: 'text' },
  { name: 'notes', label: 'Notes', type: 'textarea' },
];
const RESULTS = new URL('RESULTS.md', import.meta.url);

interface Answer {
  readonly status: number;
  readonly body: Record<string, unknown>;
  readonly headers: Headers;
}

/** A signed-in user of the service: cookie, CSRF token, and an address of its own. */
class User {
  cookie = '';
  csrf = '';
  constructor(
    readonly base: string,
    readonly email: string,
    readonly ip: string,
  ) {}

  async request(
    method: string,
    path: string,
    options: { body?: unknown; headers?: Record<string, string> } = {},
  ) {
    const headers: Record<string, string> = { 'x-forwarded-for': this.ip, ...options.headers };
    if (this.cookie !== '') headers.cookie = this.cookie;
    if (method !== 'GET') {
      headers.origin = this.base;
      if (this.csrf !== '') headers['x-csrf-token'] = this.csrf;
    }
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    const started = performance.now();
    const response = await fetch(this.base + path, {
      method,
      headers,
      ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
    });
    const type = response.headers.get('content-type') ?? '';
    const body = type.includes('json') ? ((await response.json()) as Record<string, unknown>) : {};
    if (!type.includes('json')) await response.arrayBuffer();
    record(response.status, performance.now() - started);
    return { status: response.status, body, headers: response.headers } satisfies Answer;
  }

  async signIn(): Promise<void> {
    const answer = await this.request('POST', '/api/v1/auth/signin', {
      body: { email: this.email, password: PASSWORD },
    });
    if (answer.status !== 200) return;
    const data = answer.body.data as { csrfToken: string };
    this.cookie = answer.headers.get('set-cookie')?.split(';')[0] ?? '';
    this.csrf = data.csrfToken;
  }
}

// What the load saw, per sampling window.
let window = { requests: 0, latenciesMs: [] as number[], statuses: new Map<number, number>() };
function record(status: number, latencyMs: number): void {
  window.requests += 1;
  window.latenciesMs.push(latencyMs);
  window.statuses.set(status, (window.statuses.get(status) ?? 0) + 1);
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted.length === 0 ? 0 : (sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0);
}

function metric(text: string, name: string): number {
  const match = new RegExp(`^${name} ([\\d.e+-]+)$`, 'm').exec(text);
  return match ? Number(match[1]) : Number.NaN;
}

/** Keys by kind (`<prefix>:<kind>:...:<suffix>`), with the longest remaining TTL of each kind. */
async function keyCensus(client: typeof admin): Promise<Map<string, { count: number; maxTtlS: number }>> {
  const census = new Map<string, { count: number; maxTtlS: number }>();
  for await (const keys of client.scanIterator({ COUNT: 1000 })) {
    for (const key of keys) {
      const parts = key.split(':');
      // Per-key ids (hashes) are left out; short suffixes name the part of a record.
      const suffix = parts.length > 2 && (parts.at(-1) ?? '').length <= 2 ? `:…:${parts.at(-1) ?? ''}` : '';
      const kind = `${parts[1] ?? '?'}${suffix}`;
      const ttlS = Math.round((await client.pTTL(key)) / 1000);
      const entry = census.get(kind) ?? { count: 0, maxTtlS: 0 };
      census.set(kind, { count: entry.count + 1, maxTtlS: Math.max(entry.maxTtlS, ttlS) });
    }
  }
  return census;
}

interface Sample {
  readonly atS: number;
  readonly requestsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly heapMiB: number;
  readonly rssMiB: number;
  readonly eventLoopP99Ms: number;
  readonly redisMiB: number;
  readonly redisKeys: number;
  readonly statuses: string;
}

const redis = await RedisServer.start({ name: 'soak' });
const admin = createClient({ socket: { host: '127.0.0.1', port: redis.port } });
await admin.connect();
const dataDir = mkdtempSync(join(tmpdir(), 'gh-soak-'));
const env: Record<string, string> = {
  PATH: process.env.PATH ?? '',
  HOST: '127.0.0.1',
  REDIS_URL: `redis://127.0.0.1:${String(redis.port)}`,
  SECRET_KEYS: randomBytes(32).toString('hex'),
  COOKIE_SECURE: 'false',
  TRUST_PROXY: '1',
  LOG_LEVEL: 'warn',
  DATA_DIR: dataDir,
  // Each user may make 10 requests a second: the load stays below it but for the abuser.
  RATE_LIMIT_API: '600/1m+50',
  RATE_LIMIT_PUBLIC: '600/1m+50',
  RATE_LIMIT_PDF: '120/1m+10',
};
// PostgreSQL, as deployed, when the machine has it; the embedded PGlite otherwise.
const scratch = await createScratchDatabase('gh_soak');
if (scratch) env.DATABASE_URL = scratch.url;
const database = scratch ? 'PostgreSQL on loopback' : 'PGlite (embedded)';

const port = await freePort();
const base = `http://127.0.0.1:${String(port)}`;
const service = spawn(
  process.execPath,
  [...TYPESCRIPT_NODE_ARGS, new URL('../packages/server/src/cli/main.ts', import.meta.url).pathname, 'serve'],
  { env: { ...env, PORT: String(port) }, stdio: ['ignore', 'inherit', 'inherit'] },
);
const exited = new Promise<number>((resolve) => {
  service.once('exit', (code) => {
    resolve(code ?? -1);
  });
});
const crashed = (): boolean => service.exitCode !== null || service.signalCode !== null;

async function cleanUp(): Promise<void> {
  if (service.exitCode === null) service.kill('SIGTERM');
  await exited;
  await admin.quit().catch(() => undefined);
  await redis.destroy();
  rmSync(dataDir, { recursive: true, force: true });
  await scratch?.drop();
}

try {
  for (const deadline = Date.now() + 60_000; ;) {
    if (
      await fetch(`${base}/health`).then(
        (r) => r.ok,
        () => false,
      )
    )
      break;
    if (Date.now() > deadline || crashed()) throw new Error('the service did not start');
    await sleep(200);
  }

  // Users, each with a form of their own organization and a submitted response to render.
  const users: Array<{ user: User; formId: string; responseId: string }> = [];
  for (let i = 0; i < userCount; i++) {
    const user = new User(
      base,
      `soak-${String(i)}-${randomBytes(3).toString('hex')}@example.test`,
      `198.18.${String(Math.floor(i / 200))}.${String((i % 200) + 1)}`,
    );
    await user.request('POST', '/api/v1/auth/signup', { body: { email: user.email, password: PASSWORD } });
    await user.signIn();
    const form = await user.request('POST', '/api/v1/forms', {
      body: {
        title: `Intake ${String(i)}`,
        fields: FIELDS,
      },
    });
    const formId = (form.body.data as { form: { id: string } }).form.id;
    const visitor = new User(base, '', user.ip);
    const { nonce } = (await visitor.request('GET', `/api/v1/public/forms/${formId}`)).body.data as {
      nonce: string;
    };
    const submitted = await visitor.request('POST', `/api/v1/public/forms/${formId}/responses`, {
      body: { nonce, answers: { name: 'Soak Test', notes: 'steady load' } },
    });
    const responseId = (submitted.body.data as { response: { id: string } }).response.id;
    users.push({ user, formId, responseId });
  }
  window = { requests: 0, latenciesMs: [], statuses: new Map() };

  const stopAt = Date.now() + durationMs;
  let unexpected = 0;
  const unexpectedSeen: string[] = [];
  const expect = (what: string, answer: Answer, ...allowed: number[]) => {
    if (allowed.includes(answer.status)) return;
    unexpected += 1;
    if (unexpectedSeen.length < 10)
      unexpectedSeen.push(`${what}: ${String(answer.status)} ${JSON.stringify(answer.body)}`);
  };

  /** One user's steady mix of requests, about 4 a second. */
  async function userLoop(entry: (typeof users)[number], index: number): Promise<void> {
    const { user, formId, responseId } = entry;
    let step = index;
    while (Date.now() < stopAt && !crashed()) {
      step += 1;
      const kind = step % 20;
      if (kind < 10) {
        expect('me', await user.request('GET', '/api/v1/me'), 200);
      } else if (kind < 12) {
        expect('sessions', await user.request('GET', '/api/v1/sessions'), 200);
      } else if (kind === 12) {
        // A CSRF-checked write under the fenced edit lock: take, write, release.
        const lock = await user.request('POST', `/api/v1/forms/${formId}/lock`);
        expect('lock', lock, 200);
        if (lock.status === 200) {
          const token = (lock.body.data as { lock: { token: string } }).lock.token;
          expect(
            'put',
            await user.request('PUT', `/api/v1/forms/${formId}`, {
              body: {
                title: `Intake ${String(step)}`,
                fields: FIELDS,
              },
              headers: { 'x-lock-token': token },
            }),
            200,
          );
          expect(
            'unlock',
            await user.request('DELETE', `/api/v1/forms/${formId}/lock`, {
              headers: { 'x-lock-token': token },
            }),
            204,
          );
        }
      } else if (kind === 13) {
        expect('csrf', await user.request('GET', '/api/v1/auth/csrf'), 200);
      } else if (kind === 14) {
        // Public submission with a single-use nonce, spent once.
        const visitor = new User(base, '', user.ip);
        const got = await visitor.request('GET', `/api/v1/public/forms/${formId}`);
        expect('public form', got, 200);
        const { nonce } = got.body.data as { nonce: string };
        const answers = { nonce, answers: { name: 'Soak Test', notes: 'x'.repeat(200) } };
        expect(
          'submit',
          await visitor.request('POST', `/api/v1/public/forms/${formId}/responses`, { body: answers }),
          201,
        );
        expect(
          'replay',
          await visitor.request('POST', `/api/v1/public/forms/${formId}/responses`, { body: answers }),
          409,
        );
      } else if (kind === 15) {
        // 409 when another user's render of the same response holds the lock: both are right.
        expect('pdf', await user.request('POST', `/api/v1/responses/${responseId}/pdf`), 200, 409);
      } else if (kind === 16 && step % 100 === 16) {
        // Now and then sign out and in again (an Argon2id verification, a new session).
        expect('signout', await user.request('POST', '/api/v1/auth/signout'), 204);
        user.cookie = '';
        user.csrf = '';
        await user.signIn();
        expect('signed-in', await user.request('GET', '/api/v1/me'), 200);
      } else {
        expect('form', await user.request('GET', `/api/v1/forms/${formId}`), 200);
      }
      await sleep(250);
    }
  }

  /** A client guessing passwords from one address: the sign-in limit keeps refusing it. */
  async function abuserLoop(): Promise<void> {
    const abuser = new User(base, users[0]?.user.email ?? '', '203.0.113.250');
    while (Date.now() < stopAt && !crashed()) {
      expect(
        'guess',
        await abuser.request('POST', '/api/v1/auth/signin', {
          body: { email: abuser.email, password: 'wrong password!!' },
        }),
        401,
        429,
      );
      await sleep(500);
    }
  }

  const samples: Sample[] = [];
  const censuses: Array<Awaited<ReturnType<typeof keyCensus>>> = [];
  const startedAt = Date.now();
  async function sampler(): Promise<void> {
    while (Date.now() < stopAt && !crashed()) {
      await sleep(Math.min(sampleMs, Math.max(0, stopAt - Date.now())));
      const seen = window;
      window = { requests: 0, latenciesMs: [], statuses: new Map() };
      const metrics = await (await fetch(`${base}/metrics`)).text();
      const memory = await admin.info('memory');
      const keys = await admin.dbSize();
      censuses.push(await keyCensus(admin));
      const sorted = seen.latenciesMs.sort((a, b) => a - b);
      const sample: Sample = {
        atS: Math.round((Date.now() - startedAt) / 1000),
        requestsPerSecond: seen.requests / (sampleMs / 1000),
        p50Ms: percentile(sorted, 0.5),
        p99Ms: percentile(sorted, 0.99),
        heapMiB: metric(metrics, 'nodejs_heap_size_used_bytes') / 2 ** 20,
        rssMiB: metric(metrics, 'process_resident_memory_bytes') / 2 ** 20,
        eventLoopP99Ms: metric(metrics, 'nodejs_eventloop_lag_p99_seconds') * 1000,
        redisMiB: Number(/used_memory:(\d+)/.exec(memory)?.[1] ?? Number.NaN) / 2 ** 20,
        redisKeys: keys,
        statuses: [...seen.statuses]
          .sort(([a], [b]) => a - b)
          .map(([status, count]) => `${String(status)}×${String(count)}`)
          .join(' '),
      };
      samples.push(sample);
      process.stdout.write(`${JSON.stringify(sample)}\n`);
    }
  }

  await Promise.all([...users.map((entry, i) => userLoop(entry, i)), abuserLoop(), sampler()]);
  if (crashed()) throw new Error('the service exited during the soak');

  // Flat: the last fifth of the run against the second (the first is warm-up), by medians of
  // samples; for 5 minutes, the last minute against the second.
  const fifth = Math.max(1, Math.floor(samples.length / 5));
  const early = samples.slice(fifth, 2 * fifth);
  const late = samples.slice(-fifth);
  const compare = (name: string, pick: (sample: Sample) => number, unit: string, allowedGrowth: number) => {
    const before = median(early.map(pick));
    const after = median(late.map(pick));
    const growth = after / before - 1;
    return { name, before, after, unit, growth, flat: growth <= allowedGrowth };
  };
  // Kinds whose keys live longer than the run (ended-session markers, revoked access tokens:
  // their TTL is the access token's or the idle timeout's) are still filling up to rate × TTL
  // when it ends; the flatness check counts the others, and the table shows every kind.
  const finalCensus = censuses.at(-1) ?? new Map<string, { count: number; maxTtlS: number }>();
  const shortLived = new Set(
    [...finalCensus].filter(([, entry]) => entry.maxTtlS * 1000 < durationMs).map(([kind]) => kind),
  );
  const shortLivedKeys = (sample: Sample) =>
    [...(censuses[samples.indexOf(sample)] ?? new Map<string, { count: number; maxTtlS: number }>())]
      .filter(([kind]) => shortLived.has(kind))
      .reduce((sum, [, entry]) => sum + entry.count, 0);
  const verdicts = [
    compare('service heap used', (s) => s.heapMiB, 'MiB', 0.15),
    compare('service resident memory', (s) => s.rssMiB, 'MiB', 0.15),
    compare('event-loop delay p99', (s) => s.eventLoopP99Ms, 'ms', 0.5),
    compare('Redis used memory', (s) => s.redisMiB, 'MiB', 0.15),
    compare('Redis keys of the kinds that expire within the run', (s) => shortLivedKeys(s), '', 0.15),
    compare('request p99', (s) => s.p99Ms, 'ms', 0.5),
  ];
  const total = samples.reduce((sum, s) => sum + s.requestsPerSecond * (sampleMs / 1000), 0);
  const fixed = (n: number, digits = 1) => n.toFixed(digits);
  const section = [
    SOAK_BEGIN,
    '## Soak (5 minutes of steady load)',
    '',
    `Command: \`npm run soak -- --duration-s ${String(durationMs / 1000)} --sample-s ${String(sampleMs / 1000)} --users ${String(userCount)}\``,
    '',
    `Machine: ${String(cpus().length)} × ${cpus()[0]?.model ?? 'unknown CPU'}, ${String(Math.round(totalmem() / 2 ** 30))} GiB, Node.js ${process.version}. Date: ${new Date().toISOString().slice(0, 10)}. Database: ${database}.`,
    '',
    `The reference service (one process, Redis on loopback) under ${String(userCount)} signed-in users, each about`,
    '4 requests a second: session validations (`/me`, `/sessions`, `/forms/:id`), CSRF-checked',
    'edits under the fenced lock (take, PUT, release), fresh CSRF tokens, public submissions with',
    'a single-use nonce (and its replay, refused), PDF renders under the per-response lock, a new',
    'sign-in (Argon2id) now and then, and one client guessing passwords, kept refused by the',
    `sign-in limit. ${Math.round(total).toLocaleString('en-US')} requests; answers other than the expected ones: ${String(unexpected)}${unexpectedSeen.length > 0 ? ` (${unexpectedSeen.join('; ')})` : ''}.`,
    '',
    '| at s | req/s | p50 ms | p99 ms | heap MiB | RSS MiB | event-loop p99 ms | Redis MiB | Redis keys | statuses |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
    ...samples.map(
      (s) =>
        `| ${String(s.atS)} | ${fixed(s.requestsPerSecond, 0)} | ${fixed(s.p50Ms)} | ${fixed(s.p99Ms)} | ${fixed(s.heapMiB)} | ${fixed(s.rssMiB)} | ${fixed(s.eventLoopP99Ms)} | ${fixed(s.redisMiB, 2)} | ${String(s.redisKeys)} | ${s.statuses} |`,
    ),
    '',
    '| second fifth of the run → last fifth (medians of samples) | before | after | change | flat? |',
    '| --- | ---: | ---: | ---: | --- |',
    ...verdicts.map(
      (v) =>
        `| ${v.name} | ${fixed(v.before, 2)} ${v.unit} | ${fixed(v.after, 2)} ${v.unit} | ${v.growth >= 0 ? '+' : ''}${fixed(v.growth * 100)}% | ${v.flat ? 'yes' : 'NO'} |`,
    ),
    '',
    'Redis keys by kind, at the end of the second fifth and at the end (a TTL of -1 would be a key',
    'that never expires: there must be none):',
    '',
    '| kind | keys then | keys at the end | longest TTL left, s |',
    '| --- | ---: | ---: | ---: |',
    ...[...finalCensus]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(
        ([kind, entry]) =>
          `| ${kind} | ${String(censuses[2 * fifth - 1]?.get(kind)?.count ?? 0)} | ${String(entry.count)} | ${String(entry.maxTtlS)} |`,
      ),
    '',
    'Flat means the last fifth grew by at most 15% over the second (memory, keys), or 50% for',
    'the delays, which move with whatever else the shared machine runs. The event-loop figure is',
    "prom-client's (`nodejs_eventloop_lag_p99_seconds`, reset at each scrape): its monitor samples",
    'every 10 ms and counts that interval in, so 10 ms means no delay at all. Kinds whose keys live',
    'longer than the run are still filling when it ends, each toward its rate times its TTL: the',
    'revocation entries of signed-out sessions (`revoke.v1`, kept for the 15-minute life of their',
    'access tokens) and the fencing counters of locks (`lock.v1:…:f`, an hour); Redis memory shows',
    'what that costs.',
    SOAK_END,
  ].join('\n');
  const results = readFileSync(RESULTS, 'utf8');
  const begin = results.indexOf(SOAK_BEGIN);
  const end = results.indexOf(SOAK_END);
  const updated =
    begin >= 0 && end > begin
      ? results.slice(0, begin) + section + results.slice(end + SOAK_END.length)
      : `${results.trimEnd()}\n\n${section}\n`;
  writeFileSync(RESULTS, updated);
  process.stdout.write(`${section}\n`);
  if (unexpected > 0 || verdicts.some((v) => !v.flat)) process.exitCode = 1;
} finally {
  await cleanUp();
}
