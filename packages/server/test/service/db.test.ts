/**
 * The service's schema migrations on PostgreSQL: instances that start together migrate the same
 * database at once (a deployment rolling out several replicas), and exactly one applies each step.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { MIGRATIONS, migrate, openDatabase } from '../../src/service/db.js';
import { createTestDatabase } from '../helpers/start-service.js';

describe('migrate on PostgreSQL', { timeout: 120_000 }, () => {
  it('lets instances starting together migrate a fresh database: each step applied once, no error', async () => {
    for (let attempt = 0; attempt < 4; attempt++) {
      const database = await createTestDatabase();
      const instances = await Promise.all(Array.from({ length: 4 }, () => openDatabase(database.url, '')));
      try {
        const applied = await Promise.all(instances.map((db) => migrate(db)));
        assert.equal(
          applied.reduce((sum, count) => sum + count, 0),
          MIGRATIONS.length,
          `attempt ${String(attempt)}: ${applied.join(', ')}`,
        );
        const [first] = instances;
        assert.ok(first);
        const { rows } = await first.query('SELECT version FROM schema_migrations ORDER BY version');
        assert.deepEqual(
          (rows as Array<{ version: number }>).map((row) => row.version),
          MIGRATIONS.map((_, index) => index + 1),
        );
      } finally {
        await Promise.all(instances.map((db) => db.close()));
        await database.drop();
      }
    }
  });
});
