/** The per-instance user cache behind `GET /api/v1/me`. */
import assert from 'node:assert/strict';
import { describe, it, mock } from 'node:test';

import type { SqlQueryable } from 'gatehouse';
import { UserCache } from '../../src/service/users.js';

/** A database with the given user ids, counting the queries it answers. */
function fakeDatabase(ids: string[]): SqlQueryable & { queries: number } {
  const db = {
    queries: 0,
    query: (_text: string, params?: unknown[]) => {
      db.queries += 1;
      const id = String(params?.[0]);
      const rows = ids.includes(id)
        ? [
            {
              id,
              email: `${id}@example.test`,
              password_hash: 'hash',
              organization_id: 'org',
              roles: ['member'],
            },
          ]
        : [];
      return Promise.resolve({ rows });
    },
  };
  return db;
}

describe('UserCache', () => {
  it('reads a user once, shows no password hash, and reads again after the TTL', async () => {
    mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
    try {
      const db = fakeDatabase(['a']);
      const cache = new UserCache(db, { ttlMs: 30_000, maxEntries: 10 });
      const first = await cache.find('a');
      assert.deepEqual(first, { id: 'a', email: 'a@example.test', organizationId: 'org', roles: ['member'] });
      assert.ok(!JSON.stringify(first).includes('hash'));
      await cache.find('a');
      assert.equal(db.queries, 1);
      mock.timers.tick(30_001);
      await cache.find('a');
      assert.equal(db.queries, 2);
    } finally {
      mock.timers.reset();
    }
  });

  it('does not keep unknown users, and keeps at most maxEntries (oldest out first)', async () => {
    const db = fakeDatabase(['a', 'b', 'c']);
    const cache = new UserCache(db, { ttlMs: 60_000, maxEntries: 2 });
    assert.equal(await cache.find('nobody'), null);
    assert.equal(await cache.find('nobody'), null);
    assert.equal(db.queries, 2);
    await cache.find('a');
    await cache.find('b');
    await cache.find('c'); // a goes
    assert.equal(db.queries, 5);
    await cache.find('c');
    await cache.find('b');
    assert.equal(db.queries, 5);
    await cache.find('a');
    assert.equal(db.queries, 6);
  });
});
