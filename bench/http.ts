/**
 * The HTTP benchmark: an authenticated `GET /api/v1/me` answered by
 *
 * - the reference service (`gatehouse serve`: session from its cookie, the `api` rate limit,
 *   the user read from SQL, security headers, metrics, request ids);
 * - a bare Fastify route answering the same JSON (the ceiling: no session, no Redis);
 * - Express 5 with express-session + connect-redis and express-rate-limit + rate-limit-redis
 *   (the stack a team would assemble), answering the same JSON from its session;
 *
 * each a child process on one redis-server started here, loaded by autocannon from this process
 * with 50 connections, the requests going round 50 sessions, in interleaved rounds.
 *
 * Then the Redis work per request, counted, not guessed: each stack is started once more behind
 * a counting TCP proxy to Redis (every chunk it writes to Redis is one round trip it started)
 * and the Redis server's own command count (INFO commandstats) is read before and after.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import autocannon from 'autocannon';
import { createClient } from '@redis/client';

import { countingProxy } from '../packages/gatehouse/test/harness/counting-proxy.js';
import { freePort, RedisServer } from '../packages/gatehouse/test/harness/redis-server.js';
import { createScratchDatabase, type ScratchDatabase } from './database.js';
import { median } from './measure.js';
import { TYPESCRIPT_NODE_ARGS } from '../packages/gatehouse/test/harness/typescript.js';

const CONNECTIONS = 50;
const SESSIONS = 50;
/** Longer than the local session cache keeps a validation (1 s). */
const SESSION_IDLE_MS = 1200;
const PASSWORD = 'correct horse battery staple';
const SERVICE_MAIN = new URL('../packages/server/src/cli/main.ts', import.meta.url).pathname;

export const HTTP_GATEHOUSE = 'gatehouse reference service';
export const HTTP_FASTIFY = 'bare Fastify route (ceiling)';
export const HTTP_PLUGIN = 'gatehouse Fastify plugin on a bare route';
export const HTTP_EXPRESS = 'Express + express-session/connect-redis + express-rate-limit/rate-limit-redis';

export interface HttpContenderResult {
  readonly name: string;
  readonly requestsPerSecond: number;
  readonly rounds: readonly number[];
  /** Latency percentiles in ms, the median of rounds. */
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly p99Rounds: readonly number[];
  /** CPU time of the server process per request (µs, median of rounds). */
  readonly serverCpuUsPerRequest: number;
}

export interface RedisWorkPerRequest {
  readonly name: string;
  readonly connections: number;
  /** Sessions the requests went round (each request takes the next one). */
  readonly sessions: number;
  /** Every session had been idle for over a second (its local cache entry gone) before its request. */
  readonly idleSessions: boolean;
  readonly requests: number;
  /** Round trips the server started with Redis (see countingProxy), per request, less its idle rate. */
  readonly roundTripsPerRequest: number;
  /** Chunks that reached Redis from the server, per request (one write may arrive as several). */
  readonly writesPerRequest: number;
  /** Commands the Redis server executed, per request (those of idle processes included). */
  readonly commandsPerRequest: number;
  /** Commands per request by name, most first (e.g. `evalsha 1.000, get 1.000`). */
  readonly commandMix: string;
  /** Round trips the stack makes with no request at all (taken out of `roundTripsPerRequest`). */
  readonly idleRoundTripsPerSecond: number;
}

export interface HttpBenchResult {
  readonly database: string;
  readonly throughput: HttpContenderResult[];
  readonly redisWork: RedisWorkPerRequest[];
  /** Every response of every round was 200 (autocannon counts the others). */
  readonly non200: number;
}

interface Child {
  readonly process: ChildProcess;
  readonly port: number;
  output(): string;
  stop(): Promise<void>;
}

/** Starts `<args>` through tsx (from source) and waits for its `listening <port>` line or for /health. */
async function startChild(args: string[], env: Record<string, string>, port?: number): Promise<Child> {
  const child = spawn(process.execPath, [...TYPESCRIPT_NODE_ARGS, ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  // A benchmark stopped half-way (Ctrl-C, a failure) takes its servers down with it.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      process.off('exit', killOnExit);
      resolve();
    });
  });
  const listening = new Promise<number>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /listening (\d+)/.exec(output);
      if (match) resolve(Number(match[1]));
    });
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    void exited.then(() => {
      reject(new Error(`${args.join(' ')} exited:\n${output}`));
    });
  });
  let found: number;
  if (port === undefined) {
    found = await listening;
  } else {
    listening.catch(() => undefined);
    found = port;
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (child.exitCode !== null || Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`${args.join(' ')} did not start:\n${output}`);
      }
      const up = await fetch(`http://127.0.0.1:${String(port)}/health`).then(
        (response) => response.ok,
        () => false,
      );
      if (up) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  return {
    process: child,
    port: found,
    output: () => output,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** CPU time (µs) a process has used so far, from /proc (Linux). */
function processCpuUs(pid: number): number {
  const fields =
    readFileSync(`/proc/${String(pid)}/stat`, 'utf8')
      .split(') ')[1]
      ?.split(' ') ?? [];
  // utime and stime are fields 14 and 15 of stat, in clock ticks (100 per second on Linux).
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

async function json(response: Response): Promise<unknown> {
  const text = await response.text();
  if (!response.ok) throw new Error(`${response.url}: ${String(response.status)} ${text}`);
  return text === '' ? undefined : JSON.parse(text);
}

/** Signs up and in `count` users on the reference service; returns their cookies. */
async function serviceSessions(base: string, count: number): Promise<string[]> {
  const cookies: string[] = [];
  for (let i = 0; i < count; i++) {
    const email = `bench-${String(i)}-${randomBytes(4).toString('hex')}@example.test`;
    const headers = { 'content-type': 'application/json', 'x-forwarded-for': `203.0.113.${String(i + 1)}` };
    await json(
      await fetch(`${base}/api/v1/auth/signup`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ email, password: PASSWORD }),
      }),
    );
    const signIn = await fetch(`${base}/api/v1/auth/signin`, {
      method: 'POST',
      headers: { ...headers, origin: base },
      body: JSON.stringify({ email, password: PASSWORD }),
    });
    await json(signIn);
    const cookie = signIn.headers.get('set-cookie')?.split(';')[0];
    if (!cookie) throw new Error('sign-in set no cookie');
    cookies.push(cookie);
  }
  return cookies;
}

/** Sessions of `count` users on a stack with the benchmark's `POST /bench/signin?user=`. */
async function benchSessions(base: string, count: number): Promise<string[]> {
  const cookies: string[] = [];
  for (let i = 0; i < count; i++) {
    const response = await fetch(`${base}/bench/signin?user=${randomUUID()}`, { method: 'POST' });
    await json(response);
    const cookie = response.headers.get('set-cookie')?.split(';')[0];
    if (!cookie) throw new Error(`${base}: sign-in set no cookie`);
    cookies.push(cookie);
  }
  return cookies;
}

interface Load {
  readonly requestsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly requests: number;
  readonly non200: number;
}

/** autocannon against `GET /api/v1/me`, the requests going round the sessions' cookies. */
async function load(
  port: number,
  cookies: readonly string[],
  options: { connections: number; durationS?: number; amount?: number },
): Promise<Load> {
  let next = 0;
  const result = await autocannon({
    url: `http://127.0.0.1:${String(port)}`,
    connections: options.connections,
    ...(options.amount === undefined ? { duration: options.durationS ?? 5 } : { amount: options.amount }),
    requests: [
      {
        method: 'GET',
        path: '/api/v1/me',
        // Each request takes the next session in turn.
        setupRequest: (request) => ({
          ...request,
          headers: { ...request.headers, cookie: cookies[next++ % cookies.length] ?? '' },
        }),
      },
    ],
  });
  const non200 = result.non2xx + result.errors + result.timeouts;
  return {
    requestsPerSecond: result.requests.average,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    requests: result.requests.total,
    non200,
  };
}

/** Commands the Redis server has executed so far, by command (INFO commandstats). */
async function commandCounts(info: (section: string) => Promise<string>): Promise<Map<string, number>> {
  const text = await info('commandstats');
  const counts = new Map<string, number>();
  for (const match of text.matchAll(/cmdstat_([^:]+):calls=(\d+)/g))
    counts.set(match[1] ?? '', Number(match[2]));
  return counts;
}

interface Stack {
  readonly name: string;
  start(redisPort: number): Promise<Child>;
  readonly cookies: readonly string[];
}

export async function runHttpBench(options: { rounds: number; roundMs: number }): Promise<HttpBenchResult> {
  const redis = await RedisServer.start({ name: 'bench-http' });
  const admin = createClient({ socket: { host: '127.0.0.1', port: redis.port } });
  await admin.connect();
  const dataDir = mkdtempSync(join(tmpdir(), 'gh-bench-http-'));
  const children: Child[] = [];
  const secretKeys = randomBytes(32).toString('hex');
  let scratch: ScratchDatabase | null = null;
  const env: Record<string, string> = {
    HOST: '127.0.0.1',
    REDIS_KEY_PREFIX: 'ghb',
    SECRET_KEYS: secretKeys,
    COOKIE_SECURE: 'false',
    TRUST_PROXY: '1',
    LOG_LEVEL: 'warn',
    DATA_DIR: dataDir,
    // Limits no contender reaches: every request is a charged check, never a refusal.
    RATE_LIMIT_API: '1000000/1m+100000',
    RATE_LIMIT_AUTH: '1000000/1m+100000',
  };
  try {
    // PostgreSQL, as deployed, when the machine has it; the embedded PGlite otherwise.
    scratch = await createScratchDatabase('gh_bench');
    if (scratch) env.DATABASE_URL = scratch.url;
    const database = scratch ? 'PostgreSQL on loopback' : 'PGlite (embedded)';

    const startService = async (redisPort: number): Promise<Child> => {
      const port = await freePort();
      const child = await startChild(
        [SERVICE_MAIN, 'serve'],
        { ...env, REDIS_URL: `redis://127.0.0.1:${String(redisPort)}`, PORT: String(port) },
        port,
      );
      children.push(child);
      return child;
    };
    const service = await startService(redis.port);
    const serviceBase = `http://127.0.0.1:${String(service.port)}`;
    const serviceCookies = await serviceSessions(serviceBase, SESSIONS);
    // The exact JSON the service answers, for the other stacks to answer the same bytes.
    const body = await (
      await fetch(`${serviceBase}/api/v1/me`, { headers: { cookie: serviceCookies[0] ?? '' } })
    ).text();

    const startExpress = async (redisPort: number): Promise<Child> => {
      const child = await startChild([new URL('http/express-stack.ts', import.meta.url).pathname], {
        REDIS_PORT: String(redisPort),
        BODY: body,
        RATE_LIMIT: '1000000',
        NODE_ENV: 'production',
      });
      children.push(child);
      return child;
    };
    const startPlugin = async (redisPort: number): Promise<Child> => {
      const child = await startChild([new URL('http/fastify-gatehouse.ts', import.meta.url).pathname], {
        REDIS_PORT: String(redisPort),
        SECRET_KEYS: secretKeys,
        BODY: body,
        RATE_LIMIT: env.RATE_LIMIT_API ?? '',
      });
      children.push(child);
      return child;
    };
    const startFastify = async (): Promise<Child> => {
      const child = await startChild([new URL('http/fastify-bare.ts', import.meta.url).pathname], {
        BODY: body,
      });
      children.push(child);
      return child;
    };
    const express = await startExpress(redis.port);
    const expressCookies = await benchSessions(`http://127.0.0.1:${String(express.port)}`, SESSIONS);
    const plugin = await startPlugin(redis.port);
    const pluginCookies = await benchSessions(`http://127.0.0.1:${String(plugin.port)}`, SESSIONS);
    const fastify = await startFastify();

    const contenders = [
      { name: HTTP_GATEHOUSE, child: service, cookies: serviceCookies },
      { name: HTTP_PLUGIN, child: plugin, cookies: pluginCookies },
      { name: HTTP_FASTIFY, child: fastify, cookies: serviceCookies },
      { name: HTTP_EXPRESS, child: express, cookies: expressCookies },
    ];
    const rounds = new Map<string, Array<Load & { cpuUsPerRequest: number }>>(
      contenders.map((contender) => [contender.name, []]),
    );
    let non200 = 0;
    for (const contender of contenders) {
      const warm = await load(contender.child.port, contender.cookies, {
        connections: CONNECTIONS,
        durationS: 2,
      });
      non200 += warm.non200;
    }
    const durationS = Math.max(1, Math.round(options.roundMs / 1000));
    for (let round = 0; round < options.rounds; round++) {
      for (const contender of contenders) {
        const pid = contender.child.process.pid ?? 0;
        const cpuBefore = processCpuUs(pid);
        const measured = await load(contender.child.port, contender.cookies, {
          connections: CONNECTIONS,
          durationS,
        });
        const cpuUs = processCpuUs(pid) - cpuBefore;
        non200 += measured.non200;
        rounds.get(contender.name)?.push({ ...measured, cpuUsPerRequest: cpuUs / measured.requests });
      }
    }
    const throughput = contenders.map((contender): HttpContenderResult => {
      const values = rounds.get(contender.name) ?? [];
      return {
        name: contender.name,
        requestsPerSecond: median(values.map((value) => value.requestsPerSecond)),
        rounds: values.map((value) => value.requestsPerSecond),
        p50Ms: median(values.map((value) => value.p50Ms)),
        p99Ms: median(values.map((value) => value.p99Ms)),
        p99Rounds: values.map((value) => value.p99Ms),
        serverCpuUsPerRequest: median(values.map((value) => value.cpuUsPerRequest)),
      };
    });

    // Redis work per request: each stack once more, behind a counting proxy; the others idle.
    await Promise.all([fastify.stop(), express.stop(), service.stop(), plugin.stop()]);
    const stacks: Stack[] = [
      { name: HTTP_GATEHOUSE, start: startService, cookies: serviceCookies },
      { name: HTTP_PLUGIN, start: startPlugin, cookies: pluginCookies },
      { name: HTTP_EXPRESS, start: startExpress, cookies: expressCookies },
    ];
    const redisWork: RedisWorkPerRequest[] = [];
    for (const stack of stacks) {
      const proxy = await countingProxy(redis.port);
      const child = await stack.start(proxy.port);
      try {
        await load(child.port, stack.cookies, { connections: CONNECTIONS, amount: 2000 }); // warm-up
        // What the stack writes to Redis with no request at all (health probes, keep-alive
        // pings): measured over 3 s, and taken out of the per-request figures.
        const idleBefore = proxy.roundTrips();
        const idleStarted = performance.now();
        await new Promise((resolve) => setTimeout(resolve, 3000));
        const idlePerMs = (proxy.roundTrips() - idleBefore) / (performance.now() - idleStarted);
        // One connection with one session (its validation answered from the local cache, but for
        // once a second), one connection going round all the sessions, and 50 connections.
        // ... and every session idle for over a second before its request (its cache entry gone):
        // ten passes of one request per session, each after a pause.
        const runs = [
          { connections: 1, sessions: stack.cookies.slice(0, 1), requests: 2000, passes: 1, idle: false },
          { connections: 1, sessions: stack.cookies, requests: 2000, passes: 1, idle: false },
          { connections: CONNECTIONS, sessions: stack.cookies, requests: 20_000, passes: 1, idle: false },
          { connections: 1, sessions: stack.cookies, requests: stack.cookies.length, passes: 10, idle: true },
        ];
        for (const { connections, sessions, requests, passes, idle } of runs) {
          const writesBefore = proxy.writes();
          const roundTripsBefore = proxy.roundTrips();
          const commandsBefore = await commandCounts((section) => admin.info(section));
          const started = performance.now();
          let measured: Load = { requestsPerSecond: 0, p50Ms: 0, p99Ms: 0, requests: 0, non200: 0 };
          for (let pass = 0; pass < passes; pass++) {
            if (idle) await new Promise((resolve) => setTimeout(resolve, SESSION_IDLE_MS));
            const one = await load(child.port, sessions, { connections, amount: requests });
            measured = {
              ...one,
              requests: measured.requests + one.requests,
              non200: measured.non200 + one.non200,
            };
          }
          const background = idlePerMs * (performance.now() - started);
          const commandsAfter = await commandCounts((section) => admin.info(section));
          // Our own INFO call is counted between the two readings.
          commandsAfter.set('info', (commandsAfter.get('info') ?? 1) - 1);
          const perCommand = [...commandsAfter]
            .map(([name, count]): [string, number] => [
              name,
              (count - (commandsBefore.get(name) ?? 0)) / measured.requests,
            ])
            .filter(([, perRequest]) => perRequest > 0)
            .sort(([, a], [, b]) => b - a);
          const commands = perCommand.reduce((sum, [, perRequest]) => sum + perRequest, 0);
          non200 += measured.non200;
          redisWork.push({
            name: stack.name,
            connections,
            sessions: sessions.length,
            idleSessions: idle,
            requests: measured.requests,
            roundTripsPerRequest: (proxy.roundTrips() - roundTripsBefore - background) / measured.requests,
            writesPerRequest: (proxy.writes() - writesBefore) / measured.requests,
            commandsPerRequest: commands,
            commandMix: perCommand.map(([name, perRequest]) => `${name} ${perRequest.toFixed(3)}`).join(', '),
            idleRoundTripsPerSecond: idlePerMs * 1000,
          });
        }
      } finally {
        await child.stop();
        proxy.close();
      }
    }
    return { database, throughput, redisWork, non200 };
  } finally {
    await Promise.all(children.map((child) => child.stop()));
    await admin.quit().catch(() => undefined);
    await redis.destroy();
    await scratch?.drop().catch(() => undefined);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Median of per-round ratios of two contenders' req/s (rounds run back to back). */
export function httpRatio(
  results: readonly HttpContenderResult[],
  numerator: string,
  denominator: string,
): number {
  const a = results.find((result) => result.name === numerator)?.rounds ?? [];
  const b = results.find((result) => result.name === denominator)?.rounds ?? [];
  return median(a.map((value, i) => value / (b[i] ?? Number.NaN)));
}
