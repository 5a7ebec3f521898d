/**
 * What the operator commands that act on the service's state (`gatehouse sessions`,
 * `gatehouse users`) share: the service's configuration from the environment, its secret keys,
 * its embedded database (single-process: never while the service has it open), a gatehouse on
 * its Redis, and refusals that end the command with one clear line and an exit status.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import {
  ConfigError,
  createGatehouse,
  GatehouseError,
  SqlSessionRepository,
  StorePermissionError,
  StoreUnavailableError,
  type Gatehouse,
  type Logger,
} from 'gatehouse';

import { describeStore, loadConfig, type Config } from '../config.js';
import type { Database } from '../service/db.js';
import { readDevKeys } from '../service/dev-keys.js';

export type Write = (text: string) => void;

/** How long to wait for Redis before saying it is unreachable. */
export const READY_TIMEOUT_MS = 3000;
/** Any valid origin: CSRF is built by createGatehouse but never used by a command. */
const ORIGIN = 'http://localhost';

/** A failure that ends the command with `code` and a message (no stack trace). */
export class Refusal extends Error {
  constructor(
    message: string,
    readonly code: number,
    readonly usage?: string,
  ) {
    super(message);
  }
}

/** Where a command's output and messages go by default. */
export const toStdout: Write = (text) => {
  process.stdout.write(text);
};
export const toStderr: Write = (text) => {
  process.stderr.write(text);
};

/**
 * Runs a command's body: its exit status, or, when it refuses, the refusal's message (and usage)
 * on `writeError` as `gatehouse <name>: ...` and the refusal's status. Other errors propagate.
 */
export async function exitStatusOf(
  name: string,
  writeError: Write,
  body: () => Promise<number>,
): Promise<number> {
  try {
    return await body();
  } catch (error) {
    if (!(error instanceof Refusal)) throw error;
    writeError(`gatehouse ${name}: ${error.message}\n`);
    if (error.usage !== undefined) writeError(`\n${error.usage}\n`);
    return error.code;
  }
}

/** The service's configuration; a refused one is exit status 2. */
export function loadServiceConfig(env: Record<string, string | undefined>): Config {
  try {
    return loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) throw new Refusal(error.message, 2);
    throw error;
  }
}

/**
 * The service's keys: SECRET_KEYS, or the development key the service keeps in DATA_DIR, read as
 * loadOrCreateDevKeys reads it but never created: a key made here would name no session the
 * service holds.
 */
export function serviceSecretKeys(config: Config): readonly Buffer[] {
  if (config.secretKeys) return config.secretKeys;
  const dev = readDevKeys(config.dataDir);
  if ('problem' in dev) throw new Refusal(dev.problem, 2);
  return dev.keys;
}

/**
 * Where the embedded database is (with no DATABASE_URL) and whether it exists; refuses while
 * another process (the service) has it open. PGlite keeps no lock: a second process writing the
 * directory loses (or corrupts) the other's writes. An open PGlite leaves `postmaster.pid`
 * behind until it closes.
 */
export function embeddedDatabase(config: Config): {
  readonly dir: string;
  readonly where: string;
  readonly exists: boolean;
} {
  const dir = join(config.dataDir, 'pglite');
  const where = `the embedded database in ${dir}`;
  if (!existsSync(dir)) return { dir, where, exists: false };
  if (existsSync(join(dir, 'postmaster.pid'))) {
    throw new Refusal(
      `${where} is open in another process (the service?): it is single-process, so this command cannot ` +
        'write it while the service runs. Stop the service first (or use DATABASE_URL, PostgreSQL). ' +
        `If nothing uses it, it was not closed cleanly: start and stop the service once (it leaves ${join(dir, 'postmaster.pid')} behind).`,
      2,
    );
  }
  return { dir, where, exists: true };
}

/**
 * A gatehouse on the service's store, with the durable repository on `db` when given; refuses
 * when Redis does not answer within {@link READY_TIMEOUT_MS}.
 */
export async function connectGatehouse(
  config: Config,
  secretKeys: readonly Buffer[],
  db: Database | undefined,
): Promise<Gatehouse> {
  const connection = { reason: undefined as string | undefined };
  const gh = await createGatehouse({
    redis: config.store.kind === 'memory' ? 'memory' : config.store.connection,
    secretKeys,
    origin: ORIGIN,
    keyPrefix: config.keyPrefix,
    readyTimeout: READY_TIMEOUT_MS,
    logger: connectionLogger(connection),
    sessions: {
      idleTimeout: config.sessions.idleTimeoutMs,
      absoluteTimeout: config.sessions.absoluteTimeoutMs,
      maxPerUser: config.sessions.maxPerUser,
      ...(db ? { repository: new SqlSessionRepository(db) } : {}),
    },
  });
  if (!gh.store.isReady()) {
    await gh.close().catch(() => undefined);
    const reason = connection.reason === undefined ? '' : `: ${oneLine(connection.reason)}`;
    throw new Refusal(
      `Redis is not answering after ${String(READY_TIMEOUT_MS / 1000)} s (${describeStore(config)})${reason}`,
      2,
    );
  }
  return gh;
}

/** The refusal (exit status 2) for a failure while the command ran. */
export function refusalFor(error: unknown, config: Config): Refusal {
  if (error instanceof Refusal) return error;
  if (error instanceof StoreUnavailableError) {
    return new Refusal(`Redis is not answering (${describeStore(config)}): ${oneLine(error.message)}`, 2);
  }
  if (error instanceof StorePermissionError) {
    return new Refusal(
      `Redis refused gatehouse's user (${describeStore(config)}): ${oneLine(error.message)}`,
      2,
    );
  }
  if (error instanceof GatehouseError) return new Refusal(oneLine(error.message), 2);
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return new Refusal(`failed: ${oneLine(text)}`, 2);
}

/** Silent, except that it keeps why the connection failed, for the message. */
function connectionLogger(connection: { reason: string | undefined }): Logger {
  const ignore = (): void => undefined;
  return {
    error: ignore,
    info: ignore,
    debug: ignore,
    warn: (fields) => {
      const reason = fields['reason'];
      if (typeof reason === 'string') connection.reason ??= reason;
    },
  };
}

export function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, '; ').trim();
}

/** Terminal-safe text: control characters (escape sequences) and bidi overrides become "?". */
export function printable(text: string): string {
  return text.replace(/[\p{Cc}\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu, '?');
}
