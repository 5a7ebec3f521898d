/**
 * The fuzz run on one service: the cases for every route (seeded from FUZZ_SEED, FUZZ_CASE and
 * FUZZ_ITERATIONS, see ../fuzz.test.ts), the regression cases, floods of one client address and
 * of one session's event streams, and what must hold afterwards: the service answers, logged no
 * error, threw nothing uncaught, and polluted no prototype.
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { after, before, describe, it } from 'node:test';

import { createServiceLogger, type ServiceLogger } from '../../../src/logger.js';
import { Client } from '../../helpers/client.js';
import type { RunningService } from '../../helpers/start-service.js';
import { buildCase } from './cases.js';
import { setUp, type Fixtures } from './fixtures.js';
import { check } from './oracle.js';
import { describeAnswer, describeWire, openStream, send, type Header, type Wire } from './raw-http.js';
import { regressionCases } from './regressions.js';
import { Rng } from './rng.js';
import { discoverRoutes } from './routes.js';

const SEED = process.env.FUZZ_SEED ? Number.parseInt(process.env.FUZZ_SEED, 10) >>> 0 : randomInt(2 ** 31);
const ITERATIONS = Math.max(1, Number.parseInt(process.env.FUZZ_ITERATIONS ?? '', 10) || 80);
const ONLY_CASE = process.env.FUZZ_CASE === undefined ? undefined : Number(process.env.FUZZ_CASE);
/** Requests in flight at once (besides the serial lane of session-ending and lock routes). */
const CONCURRENCY = 6;

interface Tally {
  sent: number;
  ok: number;
  byStatus: Map<number, number>;
}

async function pool<T>(items: readonly T[], width: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) {
        const item = items[next++];
        if (item !== undefined) await work(item);
      }
    }),
  );
}

export function fuzzSuite(
  name: string,
  start: (logger: ServiceLogger) => Promise<RunningService>,
  options: { allow503: boolean },
): void {
  describe(`service fuzz: ${name}`, { timeout: 200_000 }, () => {
    let running: RunningService;
    let fx: Fixtures;
    const logged: string[] = [];
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown) => {
      uncaught.push(error);
    };

    before(async () => {
      process.on('uncaughtException', onUncaught);
      process.on('unhandledRejection', onUncaught);
      // Error-level log lines go here instead of stdout: the service's own logger, on a capture.
      const logger = createServiceLogger('error', {
        write: (line: string) => {
          logged.push(line);
        },
      });
      running = await start(logger);
      // The capture sees what request loggers (children) write.
      running.service.app.log.child({ probe: true }).error('service-fuzz: log capture');
      assert.equal(logged.length, 1, 'the log capture works');
      logged.length = 0;
      fx = await setUp(running);
    });
    after(async () => {
      process.off('uncaughtException', onUncaught);
      process.off('unhandledRejection', onUncaught);
      await running.close();
    });

    it('answers hostile requests to every route within the contract', async (t) => {
      const started = Date.now();
      const routes = await discoverRoutes(fx);
      t.diagnostic(`FUZZ_SEED=${SEED} FUZZ_ITERATIONS=${ITERATIONS} routes=${routes.length}`);
      const master = new Rng(SEED);
      const cases = routes.flatMap((route) =>
        Array.from({ length: ITERATIONS }, () => ({ route, seed: Math.floor(master.next() * 2 ** 32) })),
      );
      // Interleave the routes, reproducibly.
      for (let i = cases.length - 1; i > 0; i--) {
        const j = master.int(i + 1);
        [cases[i], cases[j]] = [cases[j] as (typeof cases)[number], cases[i] as (typeof cases)[number]];
      }
      const indexed = cases.map((item, index) => ({ ...item, index }));
      const selected = ONLY_CASE === undefined ? indexed : indexed.filter((item) => item.index === ONLY_CASE);
      const tallies = new Map<string, Tally>(
        routes.map((route) => [route.key, { sent: 0, ok: 0, byStatus: new Map() }]),
      );
      const problems: string[] = [];

      const run = async ({ route, seed, index }: (typeof indexed)[number]) => {
        const built = await buildCase(route, index, new Rng(seed), fx);
        const answer = await send(fx.port, built.wire);
        const tally = tallies.get(route.key);
        if (tally) tally.sent += 1;
        const report = (what: string) =>
          `case ${index} (${route.key}; ${built.notes.join('; ')}): ${what}\n    request: ${describeWire(built.wire)}`;
        if (typeof answer === 'string') {
          problems.push(report(answer));
          return;
        }
        if (tally) {
          tally.byStatus.set(answer.status, (tally.byStatus.get(answer.status) ?? 0) + 1);
          if (answer.status >= 200 && answer.status < 300 && built.wire.method === route.method)
            tally.ok += 1;
        }
        const found = check(answer, built.wire, {
          template: route.template,
          allow503: options.allow503,
          ...(built.requestId === undefined ? {} : { requestId: built.requestId }),
          ...(built.expect === undefined ? {} : { expect: built.expect }),
        });
        if (found.length > 0)
          problems.push(`${report(found.join('; '))}\n    answer: ${describeAnswer(answer)}`);
        if (route.key === 'POST /api/v1/public/forms/{id}/responses' && answer.status === 201) {
          const id = (JSON.parse(answer.body.toString('utf8')) as { data?: { response?: { id?: string } } })
            .data?.response?.id;
          if (id) fx.responses.push(id);
        }
        // Keep the edit lock's token for the next lock cases.
        if (built.formId !== undefined && answer.status === 200 && route.template.endsWith('/lock')) {
          const token = (JSON.parse(answer.body.toString('utf8')) as { data?: { lock?: { token?: string } } })
            .data?.lock?.token;
          if (token) fx.lockTokens.set(built.formId, token);
        }
      };
      await Promise.all([
        pool(
          selected.filter((item) => !item.route.serial),
          CONCURRENCY,
          run,
        ),
        pool(
          selected.filter((item) => item.route.serial),
          1,
          run,
        ),
      ]);

      const regressions = regressionCases(fx);
      for (const regression of regressions) {
        const answer = await send(fx.port, regression.wire);
        if (typeof answer === 'string') {
          problems.push(`regression "${regression.name}": ${answer}`);
          continue;
        }
        const found = check(answer, regression.wire, {
          template: regression.wire.target.toString('latin1'),
          allow503: false,
          ...(regression.expect ? { expect: regression.expect } : {}),
        });
        if (found.length > 0)
          problems.push(
            `regression "${regression.name}": ${found.join('; ')}\n    answer: ${describeAnswer(answer)}`,
          );
      }

      const total = [...tallies.values()].reduce((sum, tally) => sum + tally.sent, 0);
      const limited = [...tallies.values()].reduce((sum, tally) => sum + (tally.byStatus.get(429) ?? 0), 0);
      for (const [key, tally] of tallies) {
        const statuses = [...tally.byStatus.entries()]
          .sort(([a], [b]) => a - b)
          .map(([status, count]) => `${status}×${count}`);
        t.diagnostic(`${key}: ${tally.sent} sent, ${statuses.join(' ')}`);
      }
      t.diagnostic(
        `${total + regressions.length} requests in ${((Date.now() - started) / 1000).toFixed(1)} s, ${limited} rate-limited`,
      );
      if (problems.length > 0) {
        assert.fail(
          `FUZZ_SEED=${SEED}: ${problems.length} cases answered outside the contract (first 20):\n${problems.slice(0, 20).join('\n')}`,
        );
      }
      if (ONLY_CASE === undefined) {
        const unreached = [...tallies].filter(([, tally]) => tally.ok === 0).map(([key]) => key);
        assert.deepEqual(
          unreached,
          [],
          'routes that never answered 2xx: the fuzzer did not reach their handlers',
        );
        assert.ok(limited < total * 0.25, `${limited} of ${total} requests were rate-limited`);
      }
    });

    it('answers floods within the contract: the auth limit, the event streams of one session', async () => {
      const wire = (method: string, target: string, headers: Header[], body?: string): Wire => ({
        method,
        target: Buffer.from(target),
        version: 'HTTP/1.1',
        headers: [['Host', fx.host], ['Connection', 'close'], ...headers],
        ...(body === undefined ? {} : { body: Buffer.from(body) }),
      });
      const expectAnswer = async (request: Wire, template: string, expect: number[]) => {
        const answer = await send(fx.port, request);
        if (typeof answer === 'string') assert.fail(answer);
        assert.deepEqual(
          check(answer, request, { template, allow503: false, expect }),
          [],
          describeAnswer(answer),
        );
        return answer;
      };
      // Sign-in allows 7 at once per client address; bodies that fail validation still count.
      const signin = wire(
        'POST',
        '/api/v1/auth/signin',
        [
          ['X-Forwarded-For', '203.0.9.200'],
          ['Content-Type', 'application/json'],
        ],
        '{}',
      );
      for (let i = 0; i < 7; i++) await expectAnswer(signin, '/api/v1/auth/signin', [400]);
      await expectAnswer(signin, '/api/v1/auth/signin', [429]);
      // A session may hold 8 event streams on an instance; the 9th is refused with the envelope.
      const member = fx.quiet;
      const events = wire('GET', '/api/v1/events', [
        ['Authorization', `Bearer ${member.token}`],
        ['X-Forwarded-For', '203.0.9.201'],
      ]);
      const open = await Promise.all(Array.from({ length: 8 }, () => openStream(fx.port, events)));
      try {
        await expectAnswer(events, '/api/v1/events', [429]);
      } finally {
        for (const socket of open) socket.destroy();
      }
    });

    it('still answers, logged no error, and nothing was polluted', async () => {
      const health = await send(fx.port, {
        method: 'GET',
        target: Buffer.from('/health'),
        version: 'HTTP/1.1',
        headers: [
          ['Host', fx.host],
          ['Connection', 'close'],
        ],
      });
      if (typeof health === 'string') assert.fail(health);
      assert.equal(health.status, 200);
      assert.equal((JSON.parse(health.body.toString('utf8')) as { status: string }).status, 'healthy');
      const owner = new Client(fx.origin);
      owner.sessionToken = fx.members[0]?.token;
      assert.equal((await owner.get('/api/v1/me', { as: 'session-bearer' })).status, 200);
      assert.deepEqual(uncaught, []);
      assert.deepEqual(logged, [], 'error-level log lines');
      for (const prototype of [Object.prototype, Array.prototype, Function.prototype]) {
        for (const key of ['polluted', 'isAdmin', 'x']) {
          assert.equal(key in prototype, false, `${key} on a prototype`);
        }
      }
    });
  });
}
