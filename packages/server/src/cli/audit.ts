/**
 * `gatehouse audit verify`: checks the whole audit chain of the service's database, with the
 * service's configuration (DATABASE_URL, or the embedded database in DATA_DIR; SECRET_KEYS, or
 * the development key the service keeps in DATA_DIR: read, never created here).
 *
 *   gatehouse audit verify [--anchor <id>:<hash>]
 *
 * It prints the number of rows and the newest row's id and hash, or names the first row that
 * does not verify and why (packages/server/src/service/audit-chain.ts says what each problem
 * means). `--anchor` takes the id and hash of an `audit anchor` log line: the table must still
 * hold that row with that hash. The command only reads: it runs no migration, and it prints no
 * key (key ids are public fingerprints) and no database password.
 *
 * Exit status: 0 the chain verifies; 1 it does not; 2 the command could not run (usage,
 * configuration, no keys, the database unreachable or without an audit table).
 */
import { parseArgs } from 'node:util';

import { KeyRing } from 'gatehouse';

import { redactUrl, type Config } from '../config.js';
import { AuditLog, type AuditLogger } from '../service/audit.js';
import type { AuditAnchor, AuditProblem } from '../service/audit-chain.js';
import { openDatabase, type Database } from '../service/db.js';
import {
  embeddedDatabase,
  exitStatusOf,
  loadServiceConfig,
  oneLine,
  printable,
  Refusal,
  serviceSecretKeys,
  toStderr,
  toStdout,
  type Write,
} from './service-resources.js';

const USAGE = `Usage: gatehouse audit <command> [options]

Commands:
  verify [--anchor <id>:<hash>]   check the whole audit chain; exit status 1 names the first row
                                  that does not verify

Options:
  -h, --help                      show help (also after a command)

Configuration comes from the service's environment variables (DATABASE_URL or DATA_DIR, and
SECRET_KEYS: the keys the chain was made with). Exit status 2 means the command could not run.`;

const VERIFY_USAGE = `Usage: gatehouse audit verify [--anchor <id>:<hash>]

Checks every row of the audit log, in order: each row follows the one before without a gap,
holds the previous row's hash, and its own hash is the keyed hash of its fields under a key of
SECRET_KEYS. Prints the number of rows and the newest row's id and hash.

--anchor <id>:<hash>   the id and hash of an "audit anchor" log line: the row must still be in
                       the table with that hash (finds newest rows removed or rewritten)

Rows made under a key no longer in SECRET_KEYS do not verify ("unknown-key"): run the command
with that key appended to SECRET_KEYS. Exit status 1 when the chain does not verify.`;

/** Why a row does not verify, for an operator. */
const PROBLEMS: Readonly<Record<AuditProblem, string>> = {
  gap: 'its id does not follow the previous row (a row was removed or inserted)',
  'chain-broken': "it does not hold the previous row's hash (a row before it was changed or replaced)",
  unkeyed: 'it has no key id (a row of the unkeyed chain, or one downgraded to it)',
  'unknown-key': 'its key is not in SECRET_KEYS (a key since removed, or a forged row)',
  'hash-mismatch': 'its hash does not match its fields (the row was changed)',
  'anchor-missing': 'the anchored row is not in the table (the newest rows were removed)',
  'anchor-mismatch': 'its hash is not the anchored hash (the row was replaced)',
};

const ANCHOR = /^([1-9][0-9]{0,15}):([0-9a-f]{64})$/;

type Command =
  | { readonly kind: 'help'; readonly text: string }
  | { readonly kind: 'verify'; readonly anchor: AuditAnchor | undefined };

/**
 * Runs `gatehouse audit ...`; `argv` excludes the word `audit`. Configuration is read from `env`
 * only. The report goes to `write` (default stdout), refusals to `writeError` (default stderr),
 * each call a whole line ending in a newline. Resolves to the exit status.
 */
export async function auditCommand(
  argv: string[],
  env: Record<string, string | undefined>,
  write: Write = toStdout,
  writeError: Write = toStderr,
): Promise<number> {
  return exitStatusOf('audit', writeError, async () => {
    const command = parseCommand(argv);
    if (command.kind === 'help') {
      write(`${command.text}\n`);
      return 0;
    }
    return verify(command.anchor, env, write, writeError);
  });
}

function parseCommand(argv: readonly string[]): Command {
  const [name, ...rest] = argv;
  if (name === undefined) throw new Refusal('a command is required', 2, USAGE);
  if (name === '--help' || name === '-h' || name === 'help') return { kind: 'help', text: USAGE };
  if (name !== 'verify') throw new Refusal(`unknown command "${printable(name)}"`, 2, USAGE);
  let values;
  try {
    ({ values } = parseArgs({
      args: rest,
      options: { anchor: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: false,
      strict: true,
    }));
  } catch (error) {
    throw new Refusal(printable(error instanceof Error ? error.message : String(error)), 2, VERIFY_USAGE);
  }
  if (values.help === true) return { kind: 'help', text: VERIFY_USAGE };
  if (values.anchor === undefined) return { kind: 'verify', anchor: undefined };
  const match = ANCHOR.exec(values.anchor);
  if (!match) {
    throw new Refusal(
      '--anchor must be <id>:<hash> as an "audit anchor" log line gives them (a positive id, 64 lowercase hex digits)',
      2,
      VERIFY_USAGE,
    );
  }
  return { kind: 'verify', anchor: { id: Number(match[1]), hash: match[2] ?? '' } };
}

async function verify(
  anchor: AuditAnchor | undefined,
  env: Record<string, string | undefined>,
  write: Write,
  writeError: Write,
): Promise<number> {
  const config = loadServiceConfig(env);
  const secretKeys = serviceSecretKeys(config);
  const db = await openAuditDatabase(config);
  try {
    const audit = new AuditLog(db, SILENT, { keyRing: new KeyRing(secretKeys) });
    const result = await audit.verify(anchor === undefined ? {} : { anchor });
    if (result.ok) {
      const newest =
        result.head === null ? '' : `; newest row ${String(result.head.id)}, hash ${result.head.hash}`;
      const anchored = anchor === undefined ? '' : `; anchor ${String(anchor.id)} found`;
      write(
        `audit chain verified: ${String(result.rows)} row${result.rows === 1 ? '' : 's'}${newest}${anchored}\n`,
      );
      return 0;
    }
    writeError(
      `gatehouse audit: row ${String(result.firstBadId)} does not verify (${result.problem}): ${PROBLEMS[result.problem]}; ` +
        `${String(result.rows)} row${result.rows === 1 ? '' : 's'} before it verified\n`,
    );
    return 1;
  } catch (error) {
    throw new Refusal(
      `cannot read the audit log: ${oneLine(error instanceof Error ? error.message : String(error))}`,
      2,
    );
  } finally {
    await db.close().catch(() => undefined);
  }
}

/**
 * The service's database, opened to read, or a refusal: an embedded database that does not exist
 * is not created, one the service has open is not touched (PGlite is single-process), and a
 * database without the keyed audit table (migrations not run) is named.
 */
async function openAuditDatabase(config: Config): Promise<Database> {
  let where: string;
  if (config.databaseUrl === undefined) {
    const embedded = embeddedDatabase(config);
    where = embedded.where;
    if (!embedded.exists)
      throw new Refusal(`DATA_DIR has no embedded database (${embedded.dir}) and DATABASE_URL is unset`, 2);
  } else {
    where = `the database at ${redactUrl(config.databaseUrl)}`;
  }
  let db: Database | undefined;
  try {
    db = await openDatabase(config.databaseUrl, config.dataDir);
    const { rows } = await db.query(
      "SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'audit_log' AND column_name = 'key_id' AND table_schema = current_schema()",
    );
    if (Number((rows[0] as { n: number | string } | undefined)?.n ?? 0) === 0) {
      throw new Refusal(`${where} has no keyed audit_log table: start the service once to migrate it`, 2);
    }
    return db;
  } catch (error) {
    await db?.close().catch(() => undefined);
    if (error instanceof Refusal) throw error;
    throw new Refusal(
      `cannot use ${where}: ${oneLine(error instanceof Error ? error.message : String(error))}`,
      2,
    );
  }
}

const ignore = (): void => undefined;
const SILENT: AuditLogger = { info: ignore, warn: ignore, error: ignore };
