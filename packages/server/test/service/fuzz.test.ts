/**
 * Hostile input: a seeded fuzzer sends randomised bodies, headers, cookies, tokens, very long
 * values and invalid UTF-8 to every route of the reference service, over raw sockets (fetch
 * refuses most of it), and holds every answer to the HTTP contract (docs/http-api.md): no 5xx
 * (503 only where the contract allows it), the error envelope with a code from the catalogue and
 * that code's status, no stack trace or internal detail, the security headers; and afterwards the
 * service still answers, logged no error and no uncaught one, and every route got a real (2xx)
 * answer too. It runs on the memory store and on standalone Redis.
 *
 * The routes come from the service itself (/openapi.json, checked against Fastify's route
 * table). Each case draws from its own generator seeded from FUZZ_SEED and its index, so
 * `FUZZ_SEED=<seed> npm test -- service/fuzz` replays a run (FUZZ_CASE=<index> sends only that
 * case), and FUZZ_ITERATIONS=<cases per route> scales it.
 *
 * The parts, in fuzz/: the run (fuzz/suite.ts), the fixtures (fuzz/fixtures.ts), the routes
 * (fuzz/routes.ts), the cases (fuzz/cases.ts, from fuzz/hostile-values.ts, fuzz/json-bodies.ts
 * and fuzz/valid-inputs.ts), the fixed regression cases (fuzz/regressions.ts), the raw HTTP
 * client (fuzz/raw-http.ts) and the oracle (fuzz/oracle.ts, with its own copy of the error
 * catalogue in fuzz/oracle-catalogue.ts).
 */
import { after, before, describe } from 'node:test';

import {
  startStandalone,
  uniquePrefix,
  type Standalone,
} from '../../../gatehouse/test/harness/topologies.js';
import { startService } from '../helpers/start-service.js';
import { fuzzSuite } from './fuzz/suite.js';

fuzzSuite('memory store, PGlite', (logger) => startService({ LOG_LEVEL: 'error' }, { logger }), {
  allow503: false,
});

describe('on standalone Redis', () => {
  let redis: Standalone;
  before(async () => {
    redis = await startStandalone();
  });
  after(async () => {
    await redis.destroy();
  });
  fuzzSuite(
    'standalone Redis, PGlite',
    (logger) =>
      startService(
        {
          LOG_LEVEL: 'error',
          REDIS_URL: `redis://127.0.0.1:${String(redis.server.port)}`,
          REDIS_KEY_PREFIX: uniquePrefix(),
        },
        { logger },
      ),
    // A store call may time out on a loaded machine: the contract's 503 is then the right answer.
    { allow503: true },
  );
});
