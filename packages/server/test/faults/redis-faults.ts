/**
 * Shared by the Redis fault tests (redis-restart.test.ts, redis-stall.test.ts): the service they
 * start (standalone Redis with a short command timeout, durable sessions on PostgreSQL, limits out
 * of the load's way), and readers of its answers.
 */
import assert from 'node:assert/strict';

import { uniquePrefix, type Standalone } from '../../../gatehouse/test/harness/topologies.js';
import type { Answer, Client } from '../helpers/client.js';
import type { createTestDatabase } from '../helpers/start-service.js';

export const PASSWORD = 'correct horse battery staple';
export const COMMAND_TIMEOUT_MS = 500;
export const FIELDS = [{ name: 'a', label: 'A', type: 'text' }];

export type TestDatabase = Awaited<ReturnType<typeof createTestDatabase>>;

export function serviceEnv(redis: Standalone, databaseUrl: string): Record<string, string> {
  return {
    REDIS_URL: `redis://127.0.0.1:${String(redis.server.port)}`,
    REDIS_KEY_PREFIX: uniquePrefix(),
    REDIS_COMMAND_TIMEOUT: `${String(COMMAND_TIMEOUT_MS)}ms`,
    SESSION_DURABLE: 'true',
    DATABASE_URL: databaseUrl,
    SESSION_MAX_PER_USER: '1000',
    // The tests' client loops are the load, not abuse: the limits stay out of their way.
    RATE_LIMIT_AUTH: '100000/1m',
    RATE_LIMIT_API: '100000/1m',
    RATE_LIMIT_PUBLIC: '100000/1m',
  };
}

/** The `data` of a success envelope, read as `T`. */
// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- a typed read of untyped JSON
export function dataOf<T>(answer: Answer): T {
  return (answer.json as { data: T }).data;
}

export function errorCode(answer: Answer): string | undefined {
  return (answer.json as { error?: { code?: string } }).error?.code;
}

export async function createForm(owner: Client, title: string): Promise<string> {
  const created = await owner.post('/api/v1/forms', { title, fields: FIELDS }, { as: 'session-bearer' });
  assert.equal(created.status, 201, created.text);
  return dataOf<{ form: { id: string } }>(created).form.id;
}

/** `kind status: count` lines, sorted. */
export function tally(items: ReadonlyArray<{ kind: string; status: number }>): string {
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
