/**
 * `gatehouse sessions`: operators list and end a user's sessions from a shell, against the same
 * Redis (and, in durable mode, the same database) the service uses, configured by the same
 * environment variables.
 *
 *   gatehouse sessions list --user <userId> [--json]
 *   gatehouse sessions revoke <handle>
 *   gatehouse sessions revoke-all --user <userId>
 *
 * Sessions are keyed by an HMAC pseudonym of the user id, so the command needs the service's
 * SECRET_KEYS (or, outside production, the development key the service keeps in DATA_DIR: read,
 * never created here). Ended sessions are announced on the store's channel like any revocation,
 * so every instance closes their event streams at once. Tokens are never printed: the Session
 * objects this command sees hold handles only.
 *
 * Exit status: 0 done; 1 `revoke` found no live session with that handle; 2 the command could
 * not run (usage, configuration, Redis or the database unreachable).
 */
import { parseArgs } from 'node:util';

import { redactUrl, type Config } from '../config.js';
import { HANDLE_LENGTH, type Gatehouse, type Session } from 'gatehouse';
import { openDatabase, type Database } from '../service/db.js';
import {
  connectGatehouse,
  embeddedDatabase,
  exitStatusOf,
  loadServiceConfig,
  oneLine,
  printable,
  Refusal,
  refusalFor,
  serviceSecretKeys,
  toStderr,
  toStdout,
  type Write,
} from './service-resources.js';

const USAGE = `Usage: gatehouse sessions <command> [options]

Commands:
  list --user <userId> [--json]   the user's live sessions (handles, never tokens)
  revoke <handle>                 end one session; exit status 1 when no live session has that handle
  revoke-all --user <userId>      end every session of the user and print how many

Options:
  -h, --help                      show help (also after a command)

Configuration comes from the service's environment variables (REDIS_URL or REDIS_ADDR, ...,
REDIS_KEY_PREFIX, SECRET_KEYS, SESSION_*, DATABASE_URL, DATA_DIR). <userId> is the user's id,
not their email. Exit status 2 means the command could not run.`;

const LIST_USAGE = `Usage: gatehouse sessions list --user <userId> [--json]

Prints the user's live sessions, oldest first: handle, created, last seen, idle and absolute
expiry (UTC), requests, IP and user agent. --json prints them as a JSON array instead.
Tokens are never printed; a handle names a session but is not a credential.`;

const REVOKE_USAGE = `Usage: gatehouse sessions revoke <handle>

Ends the session named by <handle> (${String(HANDLE_LENGTH)} characters, from "sessions list"). Every
instance hears of it and closes the session's event streams. In durable mode (SESSION_DURABLE,
the default) the database copy is ended too; with the embedded database (no DATABASE_URL) that
needs the service stopped, as the embedded database is single-process.
Exit status 1 when no live session has that handle.`;

const REVOKE_ALL_USAGE = `Usage: gatehouse sessions revoke-all --user <userId>

Ends every session of the user ("sign out everywhere") and prints how many ended. Every instance
hears of it. Durable mode ends the database copies too (see "gatehouse sessions revoke --help").`;

const HANDLE_PATTERN = new RegExp(`^[A-Za-z0-9_-]{${String(HANDLE_LENGTH)}}$`);
const USER_AGENT_WIDTH = 40;

type Command =
  | { readonly kind: 'help'; readonly text: string }
  | { readonly kind: 'list'; readonly userId: string; readonly json: boolean }
  | { readonly kind: 'revoke'; readonly handle: string }
  | { readonly kind: 'revoke-all'; readonly userId: string };

/**
 * Runs `gatehouse sessions ...`; `argv` excludes the word `sessions`. Configuration is read from
 * `env` only. Output goes to `write` (default stdout), messages to `writeError` (default stderr),
 * each call a whole line or block ending in a newline. Resolves to the exit status.
 */
export async function sessionsCommand(
  argv: string[],
  env: Record<string, string | undefined>,
  write: Write = toStdout,
  writeError: Write = toStderr,
): Promise<number> {
  return exitStatusOf('sessions', writeError, async () => {
    const command = parseCommand(argv);
    if (command.kind === 'help') {
      write(`${command.text}\n`);
      return 0;
    }
    return run(command, env, write, writeError);
  });
}

function usageError(message: string, usage: string): Refusal {
  return new Refusal(message, 2, usage);
}

function parseCommand(argv: readonly string[]): Command {
  const [name, ...rest] = argv;
  if (name === undefined) throw usageError('a command is required', USAGE);
  if (name === '--help' || name === '-h' || name === 'help') return { kind: 'help', text: USAGE };
  const wantsHelp = rest.some((arg) => arg === '--help' || arg === '-h');
  switch (name) {
    case 'list': {
      if (wantsHelp) return { kind: 'help', text: LIST_USAGE };
      const { values } = parse(rest, LIST_USAGE, { user: { type: 'string' }, json: { type: 'boolean' } }, 0);
      return { kind: 'list', userId: userOption(values.user, LIST_USAGE), json: values.json === true };
    }
    case 'revoke': {
      if (wantsHelp) return { kind: 'help', text: REVOKE_USAGE };
      // A handle may begin with "-" (base64url): anything shaped like one is the handle, not an option.
      const handles = rest.filter((arg) => HANDLE_PATTERN.test(arg));
      const { positionals } = parse(
        rest.filter((arg) => !HANDLE_PATTERN.test(arg)),
        REVOKE_USAGE,
        {},
        1,
      );
      const all = [...handles, ...positionals];
      if (all.length !== 1) {
        throw usageError(
          all.length === 0 ? 'revoke needs a session handle' : 'revoke takes one handle',
          REVOKE_USAGE,
        );
      }
      const handle = all[0] ?? '';
      if (!HANDLE_PATTERN.test(handle)) {
        throw usageError(
          `not a session handle: expected ${String(HANDLE_LENGTH)} characters of A-Z, a-z, 0-9, "-" and "_" (as "sessions list" prints)`,
          REVOKE_USAGE,
        );
      }
      return { kind: 'revoke', handle };
    }
    case 'revoke-all': {
      if (wantsHelp) return { kind: 'help', text: REVOKE_ALL_USAGE };
      const { values } = parse(rest, REVOKE_ALL_USAGE, { user: { type: 'string' } }, 0);
      return { kind: 'revoke-all', userId: userOption(values.user, REVOKE_ALL_USAGE) };
    }
    default:
      throw usageError(`unknown command "${printable(name)}"`, USAGE);
  }
}

function parse<const O extends Record<string, { type: 'string' | 'boolean' }>>(
  args: string[],
  usage: string,
  options: O,
  maxPositionals: number,
) {
  let parsed;
  try {
    parsed = parseArgs({ args, options, allowPositionals: maxPositionals > 0, strict: true });
  } catch (error) {
    throw usageError(error instanceof Error ? error.message : String(error), usage);
  }
  if (parsed.positionals.length > maxPositionals) {
    throw usageError(`unexpected argument "${printable(parsed.positionals[maxPositionals] ?? '')}"`, usage);
  }
  return parsed;
}

function userOption(value: unknown, usage: string): string {
  if (typeof value !== 'string' || value.trim() === '')
    throw usageError('--user <userId> is required', usage);
  return value;
}

async function run(
  command: Exclude<Command, { kind: 'help' }>,
  env: Record<string, string | undefined>,
  write: Write,
  writeError: Write,
): Promise<number> {
  const config = loadServiceConfig(env);
  if (config.store.kind === 'memory') {
    throw new Refusal(
      'the service is configured with the memory store (no REDIS_URL, REDIS_ADDR, REDIS_SENTINELS or REDIS_CLUSTER_NODES, or REDIS_ENABLED=false): ' +
        "its sessions live inside the service process, out of this command's reach. " +
        'Run it with the Redis settings the service uses.',
      2,
    );
  }
  const secretKeys = serviceSecretKeys(config);

  // The database only matters when sessions are ended: a revocation must tombstone the SQL copy,
  // or a durable session would come back from SQL. Listing reads Redis, as the service does.
  let db: Database | undefined;
  let gh: Gatehouse | undefined;
  try {
    if (config.sessions.durable && command.kind !== 'list') {
      db = await openSessionDatabase(config, writeError);
    }
    gh = await connectGatehouse(config, secretKeys, db);
    return await execute(command, gh, write, writeError);
  } catch (error) {
    // A database error in the middle of a revocation (Redis may have ended the session already:
    // running the command again finishes the job) is a refusal too.
    throw refusalFor(error, config);
  } finally {
    await gh?.close().catch(() => undefined);
    await db?.close().catch(() => undefined);
  }
}

async function execute(
  command: Exclude<Command, { kind: 'help' }>,
  gh: Gatehouse,
  write: Write,
  writeError: Write,
): Promise<number> {
  switch (command.kind) {
    case 'list': {
      const sessions = await gh.sessions.list(command.userId);
      if (command.json) write(`${jsonText(sessions.map(presentJson))}\n`);
      else if (sessions.length === 0) write('no live sessions\n');
      else write(table(sessions));
      return 0;
    }
    case 'revoke': {
      const ended = await gh.sessions.revoke(command.handle, { cause: 'terminated' });
      if (ended) {
        write('revoked\n');
        return 0;
      }
      writeError('no live session with that handle\n');
      return 1;
    }
    case 'revoke-all': {
      const count = await gh.sessions.revokeAll(command.userId);
      write(`revoked ${String(count)} session${count === 1 ? '' : 's'}\n`);
      return 0;
    }
  }
}

/**
 * The service database for durable mode, or undefined (with a note) when it has no session table
 * or, embedded, does not exist: then only Redis is changed, and migrations are never run here.
 */
async function openSessionDatabase(config: Config, writeError: Write): Promise<Database | undefined> {
  let where: string;
  if (config.databaseUrl === undefined) {
    const embedded = embeddedDatabase(config);
    where = embedded.where;
    if (!embedded.exists) {
      writeError(
        `gatehouse sessions: note: SESSION_DURABLE is on but DATA_DIR has no embedded database (${embedded.dir}); ending the sessions in Redis only\n`,
      );
      return undefined;
    }
  } else {
    where = `the database at ${redactUrl(config.databaseUrl)}`;
  }
  let db: Database | undefined;
  try {
    db = await openDatabase(config.databaseUrl, config.dataDir);
    const { rows } = await db.query("SELECT to_regclass('gh_sessions') IS NOT NULL AS present");
    if ((rows[0] as { present?: unknown } | undefined)?.present !== true) {
      writeError(
        `gatehouse sessions: note: SESSION_DURABLE is on but ${where} has no gh_sessions table (migrations not run); ending the sessions in Redis only\n`,
      );
      await db.close();
      return undefined;
    }
    return db;
  } catch (error) {
    await db?.close().catch(() => undefined);
    const text = error instanceof Error ? error.message : String(error);
    throw new Refusal(`cannot use ${where} (SESSION_DURABLE is on): ${oneLine(text)}`, 2);
  }
}

/** JSON.stringify leaves C1 controls, bidi overrides and line separators raw: escape them too. */
function jsonText(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(
    /[\u007f-\u009f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

function isoTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** What `--json` prints per session: no token (the library never has one), no application data. */
function presentJson(session: Session) {
  return {
    handle: session.handle,
    userId: session.userId,
    organizationId: session.organizationId,
    roles: session.roles,
    permissions: session.permissions,
    authMethod: session.authMethod,
    createdAt: isoTime(session.createdAtMs),
    lastSeenAt: isoTime(session.lastSeenAtMs),
    idleExpiresAt: isoTime(session.idleExpiresAtMs),
    absoluteExpiresAt: isoTime(session.absoluteExpiresAtMs),
    requestCount: session.requestCount,
    ip: session.ip,
    userAgent: session.userAgent,
  };
}

function truncate(text: string, width: number): string {
  const chars = Array.from(text);
  return chars.length <= width ? text : `${chars.slice(0, width - 1).join('')}…`;
}

/** Display width, counted in code points (good enough for IPs, ISO times and user agents). */
function width(text: string): number {
  return Array.from(text).length;
}

function table(sessions: readonly Session[]): string {
  const header = [
    'HANDLE',
    'CREATED',
    'LAST SEEN',
    'IDLE EXPIRES',
    'ABSOLUTE EXPIRES',
    'REQUESTS',
    'IP',
    'USER AGENT',
  ];
  const rows = sessions.map((session) => [
    session.handle,
    isoTime(session.createdAtMs),
    isoTime(session.lastSeenAtMs),
    isoTime(session.idleExpiresAtMs),
    isoTime(session.absoluteExpiresAtMs),
    String(session.requestCount),
    session.ip === null ? '-' : printable(session.ip),
    session.userAgent === null ? '-' : truncate(printable(session.userAgent), USER_AGENT_WIDTH),
  ]);
  const widths = header.map((title, column) =>
    Math.max(width(title), ...rows.map((row) => width(row[column] ?? ''))),
  );
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, column) =>
        column === cells.length - 1 ? cell : cell + ' '.repeat((widths[column] ?? 0) - width(cell)),
      )
      .join('  ')
      .trimEnd();
  return `${[header, ...rows].map(line).join('\n')}\n`;
}
