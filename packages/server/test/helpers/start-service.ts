/**
 * Starts the reference service in this process on a free loopback port, from environment-style
 * settings as `npm start` reads them, and PostgreSQL test databases to run it on.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import pg from 'pg';

import { loadConfig } from '../../src/config.js';
import { createService, type Service } from '../../src/service/app.js';
import type { ServiceLogger } from '../../src/logger.js';
import type { Database } from '../../src/service/db.js';

export const POSTGRES_ADMIN_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface RunningService {
  readonly base: string;
  readonly service: Service;
  close(): Promise<void>;
}

/** Secret keys shared by every instance a test starts, as a deployment shares SECRET_KEYS. */
export function sharedSecretKeys(): string {
  return randomBytes(32).toString('hex');
}

export async function startService(
  env: Record<string, string>,
  options: { database?: Database; logger?: ServiceLogger; auditAnchorIntervalMs?: number } = {},
): Promise<RunningService> {
  const dataDir = mkdtempSync(join(tmpdir(), 'gh-service-'));
  const config = {
    ...loadConfig({
      HOST: '127.0.0.1',
      PORT: '3000',
      COOKIE_SECURE: 'false',
      LOG_LEVEL: 'silent',
      DATA_DIR: dataDir,
      TRUST_PROXY: '1',
      SECRET_KEYS: sharedSecretKeys(),
      ...env,
    }),
    port: 0,
  };
  const service = await createService(config, {
    redisReadyTimeoutMs: 2000,
    ...(options.database ? { database: options.database } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.auditAnchorIntervalMs === undefined
      ? {}
      : { auditAnchorIntervalMs: options.auditAnchorIntervalMs }),
  });
  const address = await service.app.listen({ host: '127.0.0.1', port: 0 });
  return {
    base: address,
    service,
    close: async () => {
      await service.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A fresh PostgreSQL database; `drop` removes it (with any connection left). */
export async function createTestDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `gh_svc_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: POSTGRES_ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(POSTGRES_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const client = new pg.Client({ connectionString: POSTGRES_ADMIN_URL });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}
