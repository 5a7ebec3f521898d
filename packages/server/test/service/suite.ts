/**
 * The reference service against its HTTP contract (docs/http-api.md), over real HTTP: every route
 * and every error code, in the cases of suite/auth.ts, suite/sessions.ts, suite/forms.ts and
 * suite/operations.ts, run in that order on one service; then, on Redis, a scan of what the cases
 * left there. Runs on each store and database the service supports (see suite.test.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { Client, freshEmail } from '../helpers/client.js';
import type { RunningService } from '../helpers/start-service.js';
import { authCases } from './suite/auth.js';
import type { SuiteContext } from './suite/context.js';
import { formCases } from './suite/forms.js';
import { operationCases } from './suite/operations.js';
import { sessionCases } from './suite/sessions.js';

export interface SuiteTarget {
  /** Starts one service instance (the suite starts one and stops it at the end). */
  start(): Promise<RunningService>;
  /** After the suite: every Redis key and value under the service's prefix, when Redis is used. */
  redisDump?(): Promise<{ keysWithoutTtl: string[]; values: Map<string, string> }>;
  /** Whether the session cookie is the secure `__Host-` one. */
  readonly secureCookies: boolean;
}

export function serviceSuite(name: string, target: SuiteTarget): void {
  describe(`reference service: ${name}`, { timeout: 240_000 }, () => {
    let running: RunningService;
    let base: string;
    /** Secrets and PHI the tests sent, which Redis must never hold in clear. */
    const secrets = new Set<string>();
    const remember = (...values: (string | undefined)[]) => {
      for (const value of values) if (value) secrets.add(value);
    };

    before(async () => {
      Client.secureOrigins = target.secureCookies;
      running = await target.start();
      base = running.base;
    });
    after(async () => {
      await running.close();
    });

    async function member(): Promise<Client> {
      const client = new Client(base);
      const email = freshEmail();
      await client.signUp(email);
      await client.signIn(email);
      remember(email, client.sessionToken, client.csrfToken, client.accessToken);
      return client;
    }
    const suite: SuiteContext = {
      get base() {
        return base;
      },
      get running() {
        return running;
      },
      secureCookies: target.secureCookies,
      member,
      remember,
    };

    authCases(suite);
    sessionCases(suite);
    formCases(suite);
    operationCases(suite);

    if (target.redisDump) {
      const dump = target.redisDump.bind(target);
      it('leaves Redis with a TTL on every key and nothing secret or personal in clear', async () => {
        await running.service.context.gh.sessions.flush();
        const { keysWithoutTtl, values } = await dump();
        assert.deepEqual(keysWithoutTtl, []);
        assert.ok(values.size > 0);
        assert.ok(secrets.size > 10);
        for (const [key, value] of values) {
          for (const secret of secrets) {
            assert.ok(!key.includes(secret) && !value.includes(secret), `${key} holds a secret or PHI`);
          }
          assert.doesNotMatch(`${key} ${value}`, /@clinic\.example|198\.51\./);
        }
      });
    }
  });
}
