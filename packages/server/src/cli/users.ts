/**
 * `gatehouse users`: operators grant and take away the service-wide role `admin` (the operations
 * dashboard) from a shell, with the service's configuration (the same environment variables):
 *
 *   gatehouse users grant-role <email> admin
 *   gatehouse users revoke-role <email> admin
 *
 * This is the only way to give the role: no request to the service can. The change is written
 * to the users table, audited (the user id and the role) before the command exits, and ends
 * every session of the user through the gatehouse library (packages/server/src/service/service-roles.ts),
 * so every running instance refuses them within 2 seconds and the next sign-in carries the new
 * roles. That needs the service's sessions within reach: Redis (every instance shares it), or,
 * with the memory store, the embedded database with the service stopped (its sessions then died
 * with it, and their durable copies are ended here). The memory store with DATABASE_URL is
 * refused: the sessions of a running service would be out of reach and keep the old roles.
 *
 * Exit status: 0 done, or nothing to do (the role held already, or not held); 1 no account has
 * that email (or, to grant, it was removed from its organization); 2 the command could not run
 * (usage, configuration, Redis or the database unreachable, the database not migrated).
 */
import { parseArgs } from 'node:util';

import type { Gatehouse } from 'gatehouse';

import { redactUrl, type Config } from '../config.js';
import { AccessTokens } from '../service/access-tokens.js';
import { AuditLog } from '../service/audit.js';
import { MIGRATIONS, openDatabase, type Database } from '../service/db.js';
import {
  changeServiceRole,
  SERVICE_ROLES,
  type RoleChange,
  type RoleChangeOutcome,
} from '../service/service-roles.js';
import { normalizeEmail } from '../service/users.js';
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

const USAGE = `Usage: gatehouse users <command> [options]

Commands:
  grant-role <email> admin    give the user the admin role (the /admin dashboard)
  revoke-role <email> admin   take it away

Either ends every session of the user on every instance (within 2 s), so the next sign-in
carries the change; both are audited. Only the service-wide role admin is given this way: owner
and member are organization roles (sign-up and invites give them).

Options:
  -h, --help                  show this help

Configuration comes from the service's environment variables (DATABASE_URL or DATA_DIR,
REDIS_URL or REDIS_ADDR, ..., REDIS_KEY_PREFIX, SECRET_KEYS, SESSION_*). With the embedded
database (no DATABASE_URL) stop the service first: it is single-process. Exit status 1 when no
account has that email, 2 when the command could not run.`;

type Command =
  | { readonly kind: 'help' }
  | { readonly kind: 'change'; readonly change: RoleChange; readonly email: string; readonly role: string };

const COMMANDS: Readonly<Record<string, RoleChange>> = { 'grant-role': 'grant', 'revoke-role': 'revoke' };

/**
 * Runs `gatehouse users ...`; `argv` excludes the word `users`. Configuration is read from `env`
 * only. Output goes to `write` (default stdout), messages to `writeError` (default stderr), each
 * call a whole line ending in a newline. Resolves to the exit status.
 */
export async function usersCommand(
  argv: string[],
  env: Record<string, string | undefined>,
  write: Write = toStdout,
  writeError: Write = toStderr,
): Promise<number> {
  return exitStatusOf('users', writeError, async () => {
    const command = parseCommand(argv);
    if (command.kind === 'help') {
      write(`${USAGE}\n`);
      return 0;
    }
    return run(command, env, write, writeError);
  });
}

function parseCommand(argv: string[]): Command {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: { help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    throw new Refusal(error instanceof Error ? error.message : String(error), 2, USAGE);
  }
  const [name, email, role, ...extra] = parsed.positionals;
  if (parsed.values.help === true || name === 'help') return { kind: 'help' };
  if (name === undefined) throw new Refusal('a command is required', 2, USAGE);
  const change = COMMANDS[name];
  if (change === undefined) throw new Refusal(`unknown command "${printable(name)}"`, 2, USAGE);
  if (email === undefined || role === undefined)
    throw new Refusal(`${name} needs an email and a role`, 2, USAGE);
  if (extra.length > 0) throw new Refusal(`unexpected argument "${printable(extra[0] ?? '')}"`, 2, USAGE);
  if (!SERVICE_ROLES.includes(role)) {
    throw new Refusal(
      `only the role ${SERVICE_ROLES.join(', ')} is given and taken by this command, not "${printable(role)}": ` +
        'owner and member are organization roles (sign-up and invites give them)',
      2,
    );
  }
  const normalized = normalizeEmail(email);
  if (normalized === null) throw new Refusal(`not an email address: "${printable(email)}"`, 2);
  return { kind: 'change', change, email: normalized, role };
}

async function run(
  command: Extract<Command, { kind: 'change' }>,
  env: Record<string, string | undefined>,
  write: Write,
  writeError: Write,
): Promise<number> {
  const config = loadServiceConfig(env);
  if (config.store.kind === 'memory' && config.databaseUrl !== undefined) {
    throw new Refusal(
      'the service is configured with the memory store and DATABASE_URL: its sessions live inside the running ' +
        "service, out of this command's reach, and would keep the old roles. Run it with the Redis settings " +
        'the service uses (or, with the embedded database, with the service stopped).',
      2,
    );
  }
  const secretKeys = serviceSecretKeys(config);
  let db: Database | undefined;
  let gh: Gatehouse | undefined;
  try {
    db = await openServiceDatabase(config);
    gh = await connectGatehouse(config, secretKeys, config.sessions.durable ? db : undefined);
    const audit = new AuditLog(db, auditLogger(writeError), { keyRing: gh.keyRing });
    const accessTokens = new AccessTokens(gh.keyRing, {
      issuer: config.accessTokens.issuer,
      audience: config.accessTokens.audience,
    });
    const outcome = await changeServiceRole({ db, gh, audit, accessTokens }, command);
    await audit.flush();
    return report(outcome, command, write, writeError);
  } catch (error) {
    const refusal = refusalFor(error, config);
    throw db && gh && !(error instanceof Refusal)
      ? new Refusal(
          `${refusal.message} (if the role was changed, its sessions may not all have ended: run the command again, ` +
            'or "gatehouse sessions revoke-all --user <userId>")',
          refusal.code,
        )
      : refusal;
  } finally {
    await gh?.close().catch(() => undefined);
    await db?.close().catch(() => undefined);
  }
}

/** What the command says about the outcome, and its exit status. */
function report(
  outcome: RoleChangeOutcome,
  command: Extract<Command, { kind: 'change' }>,
  write: Write,
  writeError: Write,
): number {
  const granted = command.change === 'grant';
  switch (outcome.kind) {
    case 'unknown-email':
      writeError('gatehouse users: no account has that email\n');
      return 1;
    case 'removed':
      writeError(
        `gatehouse users: user ${outcome.userId} was removed from their organization and cannot sign in: nothing granted\n`,
      );
      return 1;
    case 'unchanged':
      write(
        `user ${outcome.userId} ${granted ? 'already holds' : 'does not hold'} ${command.role}: nothing changed\n`,
      );
      return 0;
    case 'changed':
      write(
        `${granted ? 'granted' : 'revoked'} ${command.role} ${granted ? 'to' : 'from'} user ${outcome.userId} ` +
          `(roles now: ${outcome.roles.join(', ') || 'none'}); ended ${String(outcome.sessionsEnded)} ` +
          `session${outcome.sessionsEnded === 1 ? '' : 's'}, which every instance refuses within 2 s\n`,
      );
      return 0;
  }
}

/**
 * The service's database, migrated to this version by the service (never here: the command
 * must not change a schema an older service still runs on).
 */
async function openServiceDatabase(config: Config): Promise<Database> {
  let where: string;
  if (config.databaseUrl === undefined) {
    const embedded = embeddedDatabase(config);
    where = embedded.where;
    if (!embedded.exists) {
      throw new Refusal(`${where} does not exist: start the service once (it creates and migrates it)`, 2);
    }
  } else {
    where = `the database at ${redactUrl(config.databaseUrl)}`;
  }
  let db: Database | undefined;
  try {
    db = await openDatabase(config.databaseUrl, config.dataDir);
    const { rows: found } = await db.query("SELECT to_regclass('schema_migrations') IS NOT NULL AS present");
    const present = (found[0] as { present?: unknown } | undefined)?.present === true;
    const { rows } = present
      ? await db.query('SELECT coalesce(max(version), 0) AS version FROM schema_migrations')
      : { rows: [{ version: 0 }] };
    const version = Number((rows[0] as { version?: unknown } | undefined)?.version ?? 0);
    if (version < MIGRATIONS.length) {
      throw new Refusal(
        `${where} is at schema version ${String(version)}, this command needs ${String(MIGRATIONS.length)}: ` +
          'start the service of this version once (it migrates the database)',
        2,
      );
    }
    return db;
  } catch (error) {
    await db?.close().catch(() => undefined);
    if (error instanceof Refusal) throw error;
    const text = error instanceof Error ? error.message : String(error);
    throw new Refusal(`cannot use ${where}: ${oneLine(text)}`, 2);
  }
}

/** The audit rows are what counts; their log lines would be noise on a terminal. Failures are shown. */
function auditLogger(writeError: Write) {
  const ignore = (): void => undefined;
  return {
    info: ignore,
    warn: ignore,
    error: (_fields: object, message?: string) => {
      writeError(`gatehouse users: ${message ?? 'audit error'}\n`);
    },
  };
}
