/**
 * Two service instances in this process on one real Redis and one PostgreSQL database, as a
 * deployment runs several behind a load balancer (each instance has its own gatehouse, local
 * session cache and subscription), and the checks the tests of organizations and roles make
 * across them.
 */
import assert from 'node:assert/strict';

import {
  startStandalone,
  uniquePrefix,
  type Standalone,
} from '../../../gatehouse/test/harness/topologies.js';
import { Client } from './client.js';
import { createTestDatabase, sharedSecretKeys, startService, type RunningService } from './start-service.js';

export interface TwoInstances {
  readonly a: RunningService;
  readonly b: RunningService;
  /** The environment both run with: what an operator's command on this deployment reads. */
  readonly env: Record<string, string>;
  readonly redis: Standalone;
  readonly databaseUrl: string;
  close(): Promise<void>;
}

export async function startTwoInstances(): Promise<TwoInstances> {
  const redis = await startStandalone();
  const database = await createTestDatabase();
  const env = {
    REDIS_URL: `redis://127.0.0.1:${String(redis.server.port)}`,
    REDIS_KEY_PREFIX: uniquePrefix(),
    DATABASE_URL: database.url,
    SECRET_KEYS: sharedSecretKeys(),
    COOKIE_SECURE: 'false',
    TRUST_PROXY: '1',
  };
  const a = await startService(env);
  const b = await startService(env);
  return {
    a,
    b,
    env,
    redis,
    databaseUrl: database.url,
    close: async () => {
      await Promise.all([a.close(), b.close()]);
      await redis.destroy();
      await database.drop();
    },
  };
}

/** The same client's credentials (and address), sent to another instance. */
export function via(client: Client, on: { readonly base: string }): Client {
  const other = new Client(on.base);
  Object.assign(other, {
    cookie: client.cookie,
    csrfToken: client.csrfToken,
    sessionToken: client.sessionToken,
    accessToken: client.accessToken,
    sessionId: client.sessionId,
    user: client.user,
  });
  Object.defineProperty(other, 'ip', { value: client.ip });
  return other;
}

export const CREDENTIALS = ['cookie', 'session-bearer', 'access-bearer'] as const;

/**
 * Asks `GET /api/v1/me` with each credential of `client` until it is refused (401), and asserts
 * that each was refused within `boundMs` of `sinceMs`. Returns the slowest, in ms.
 */
export async function assertRefusedWithin(client: Client, sinceMs: number, boundMs = 2000): Promise<number> {
  let slowest = 0;
  for (const as of CREDENTIALS) {
    for (;;) {
      const me = await client.get('/api/v1/me', { as });
      const elapsedMs = Date.now() - sinceMs;
      if (me.status === 401) {
        assert.equal((me.json as { error: { code: string } }).error.code, 'UNAUTHENTICATED');
        slowest = Math.max(slowest, elapsedMs);
        break;
      }
      assert.equal(me.status, 200, `${as}: ${me.text}`);
      assert.ok(elapsedMs < boundMs, `${as} still accepted ${String(elapsedMs)} ms after the change`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
  return slowest;
}
