/**
 * What the audit log's tests share: a logger that keeps every call, and the two databases the
 * log runs on, PGlite in memory and PostgreSQL at 127.0.0.1:5432 (a database of its own per
 * test, dropped afterwards; an unreachable server fails the run).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';

import pg from 'pg';

import type { AuditLogger } from '../../src/service/audit.js';
import { migrate, openDatabase, openMemoryDatabase, type Database } from '../../src/service/db.js';
import { POSTGRES_ADMIN_URL } from './start-service.js';

export interface LogCall {
  level: 'info' | 'warn' | 'error';
  obj: object;
  msg: string | undefined;
}

/** Keeps every call, as pino would write them. */
export class RecordingLogger implements AuditLogger {
  readonly calls: LogCall[] = [];
  info(obj: object, msg?: string): void {
    this.calls.push({ level: 'info', obj, msg });
  }
  warn(obj: object, msg?: string): void {
    this.calls.push({ level: 'warn', obj, msg });
  }
  error(obj: object, msg?: string): void {
    this.calls.push({ level: 'error', obj, msg });
  }
  at(level: LogCall['level']): LogCall[] {
    return this.calls.filter((call) => call.level === level);
  }
}

/** A fresh, migrated database per call; `reopen` gives another handle (pool) on the same one. */
export interface Backend {
  fresh(): Promise<{ db: Database; url?: string; reopen: () => Promise<Database> }>;
  cleanup(): Promise<void>;
}

/** One PGlite (it takes seconds to start), with a freshly migrated schema per test. */
export async function pgliteBackend(): Promise<Backend> {
  const db = await openMemoryDatabase();
  let schemas = 0;
  return {
    fresh: async () => {
      schemas += 1;
      await db.query(`CREATE SCHEMA audit_${String(schemas)}`);
      await db.query(`SET search_path = audit_${String(schemas)}`); // one connection: it holds
      await migrate(db);
      return {
        db,
        reopen: () => Promise.reject(new Error('PGlite in memory has one handle')),
      };
    },
    cleanup: () => db.close(),
  };
}

/** PostgreSQL; `empty()` gives a new database without the schema (for migrations). */
export async function postgresBackend(): Promise<
  Backend & { empty(): Promise<{ db: Database; url: string }> }
> {
  const admin = new pg.Client({ connectionString: POSTGRES_ADMIN_URL, connectionTimeoutMillis: 5000 });
  await admin.connect(); // no server, no pass: this throws and the suite fails
  const opened: Database[] = [];
  const created: string[] = [];
  const open = async (url: string): Promise<Database> => {
    const db = await openDatabase(url, tmpdir());
    opened.push(db);
    return db;
  };
  const empty = async () => {
    const name = `gh_audit_${randomBytes(6).toString('hex')}`;
    await admin.query(`CREATE DATABASE ${name}`);
    created.push(name);
    const url = new URL(POSTGRES_ADMIN_URL);
    url.pathname = `/${name}`;
    const db = await open(url.toString());
    assert.equal(db.kind, 'postgres');
    return { db, url: url.toString() };
  };
  return {
    empty,
    fresh: async () => {
      const { db, url } = await empty();
      await migrate(db);
      return { db, url, reopen: () => open(url) };
    },
    cleanup: async () => {
      for (const db of opened) await db.close();
      for (const name of created) await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    },
  };
}
