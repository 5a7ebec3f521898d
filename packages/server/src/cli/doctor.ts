/**
 * `gatehouse doctor`: audits the Redis deployment gatehouse is configured for (or the one
 * `--redis-url` names) against the hardening checklist of packages/server/src/doctor/checklist.ts.
 *
 * Exit codes: 0 when nothing fails (warnings and checks that need rights do not fail), 1 when
 * any check fails, 2 on a usage or configuration error or when the server cannot be reached.
 * Passwords are never printed: URLs in messages are redacted, reports name hosts and ports only.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { loadConfig, redactUrl } from '../config.js';
import {
  ConfigError,
  isValidKeyPrefix,
  KEY_PREFIX_EXPECTED,
  parseRedisUrl,
  type RedisConnectionOptions,
  type RedisTlsOptions,
} from 'gatehouse';
import {
  DEFAULT_DOCTOR_TIMEOUT_MS,
  DEFAULT_SAMPLE_KEYS,
  DoctorConnectionError,
  runDoctor,
  type DoctorReport,
  type DoctorStatus,
} from '../doctor/doctor.js';

export const DOCTOR_HELP = `Usage: gatehouse doctor [options]

Audits a Redis deployment against a hardening checklist for health data: TLS, ACL users,
least privilege, eviction policy, memory, persistence, replication, Cluster consistency and
keys without a TTL. Read-only: it never writes, and asks ACL DRYRUN what the app user may do.

The target is --redis-url, or else the service's own settings (REDIS_URL, REDIS_ADDR,
REDIS_SENTINELS, REDIS_CLUSTER_NODES, REDIS_USERNAME, REDIS_PASSWORD, REDIS_TLS_*).
Checks the user may not run are reported as SKIP (needs rights) with a read-only auditor
ACL user to create.

Options:
  --redis-url <url>      redis://[user[:password]@]host[:port][/db] or rediss://...
                         (prefer REDIS_URL in the environment: arguments are visible to ps)
  --tls-ca <file>        CA certificate (PEM) for --redis-url with rediss://
  --tls-cert <file>      client certificate (PEM) for --redis-url
  --tls-key <file>       client certificate key (PEM) for --redis-url
  --prefix <prefix>      the app's key prefix (default REDIS_KEY_PREFIX, else gh)
  --app-user <name>      the app's ACL user, when auditing as another user (default: the connected user)
  --timeout <ms>         bound of each connection and command (default ${String(DEFAULT_DOCTOR_TIMEOUT_MS)})
  --sample-keys <n>      keys to check for a TTL per primary (default ${String(DEFAULT_SAMPLE_KEYS)})
  --json                 print the report as JSON only
  -h, --help             show this help

Exit status: 0 nothing failed, 1 a check failed, 2 usage error or Redis unreachable.`;

/** Where the command writes; the defaults are the process's stdout and stderr. */
export interface DoctorOutput {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

const DEFAULT_OUTPUT: DoctorOutput = {
  stdout: (text) => {
    process.stdout.write(text);
  },
  stderr: (text) => {
    process.stderr.write(text);
  },
};

const LABELS: Record<DoctorStatus, string> = {
  pass: 'PASS',
  warn: 'WARN',
  fail: 'FAIL',
  'needs-rights': 'SKIP',
};

/** A usage or configuration problem: reported in one line, exit 2. */
class UsageError extends Error {}

function positiveInteger(name: string, text: string | undefined, max: number): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d{1,9}$/.test(text) || Number(text) < 1 || Number(text) > max) {
    throw new UsageError(`${name} must be an integer from 1 to ${String(max)}`);
  }
  return Number(text);
}

function readPem(option: string, path: string | undefined): string | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    const code = error instanceof Error && 'code' in error ? String(error.code) : 'unreadable';
    throw new UsageError(`${option} ${path}: cannot read the file (${code})`);
  }
}

interface Target {
  readonly connection: RedisConnectionOptions;
  readonly keyPrefix: string | undefined;
}

function targetFromUrl(
  url: string,
  files: { ca?: string | undefined; cert?: string | undefined; key?: string | undefined },
): RedisConnectionOptions {
  let parsed;
  try {
    parsed = parseRedisUrl(url);
  } catch (error) {
    throw new UsageError(
      `--redis-url ${redactUrl(url)}: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  const ca = readPem('--tls-ca', files.ca);
  const cert = readPem('--tls-cert', files.cert);
  const key = readPem('--tls-key', files.key);
  if ((cert === undefined) !== (key === undefined)) {
    throw new UsageError('--tls-cert and --tls-key must be given together');
  }
  const material: { ca?: string; cert?: string; key?: string } = {
    ...(ca === undefined ? {} : { ca }),
    ...(cert === undefined ? {} : { cert }),
    ...(key === undefined ? {} : { key }),
  };
  const hasMaterial = Object.keys(material).length > 0;
  if (hasMaterial && parsed.tls !== true) {
    throw new UsageError('--tls-ca, --tls-cert and --tls-key need a rediss:// URL');
  }
  const tls: boolean | RedisTlsOptions | undefined = hasMaterial ? material : parsed.tls;
  const { tls: _tls, ...rest } = parsed;
  return { ...rest, ...(tls === undefined ? {} : { tls }) };
}

function targetFromEnvironment(env: Record<string, string | undefined>): Target {
  let config;
  try {
    config = loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) throw new UsageError(error.message);
    throw error;
  }
  if (config.store.kind === 'memory') {
    throw new UsageError(
      'no Redis is configured (the service would use the memory store): pass --redis-url, or set REDIS_URL, REDIS_ADDR, REDIS_SENTINELS or REDIS_CLUSTER_NODES',
    );
  }
  return { connection: config.store.connection, keyPrefix: config.keyPrefix };
}

/** The report as people read it: one line per check, a fix line under each problem, a summary. */
export function renderReport(report: DoctorReport): string {
  const width = Math.max(16, ...report.checks.map((check) => check.id.length));
  const lines = [`gatehouse doctor: ${report.target}`];
  for (const check of report.checks) {
    lines.push(`${LABELS[check.status]}  ${check.id.padEnd(width)}  ${check.reason}`);
    if (check.fix !== undefined && check.status !== 'pass') lines.push(`      fix: ${check.fix}`);
  }
  const { pass, warn, fail, skipped } = report.summary;
  lines.push(
    `Summary: ${String(pass)} pass, ${String(warn)} warn, ${String(fail)} fail, ${String(skipped)} skipped (needs rights)`,
  );
  return `${lines.join('\n')}\n`;
}

/**
 * Runs `gatehouse doctor` with `argv` (the arguments after `doctor`) and `env` (the service's
 * environment variables). Returns the exit code; never throws and never prints a stack trace.
 */
export async function doctorCommand(
  argv: string[],
  env: Record<string, string | undefined>,
  output: DoctorOutput = DEFAULT_OUTPUT,
): Promise<number> {
  const fail = (message: string, withHelp = false): number => {
    output.stderr(`gatehouse doctor: ${message}\n${withHelp ? `\n${DOCTOR_HELP}\n` : ''}`);
    return 2;
  };
  let values;
  try {
    values = parseArgs({
      args: argv,
      allowPositionals: false,
      strict: true,
      options: {
        'redis-url': { type: 'string' },
        'tls-ca': { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        prefix: { type: 'string' },
        'app-user': { type: 'string' },
        timeout: { type: 'string' },
        'sample-keys': { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (error) {
    // parseArgs echoes the offending argument: a URL given to the wrong option is redacted.
    return fail(redactUrl(error instanceof Error ? error.message : String(error)), true);
  }
  if (values.help === true) {
    output.stdout(`${DOCTOR_HELP}\n`);
    return 0;
  }

  let target: Target;
  let timeoutMs: number;
  let sampleKeys: number;
  let keyPrefix: string;
  try {
    timeoutMs = positiveInteger('--timeout', values.timeout, 60_000) ?? DEFAULT_DOCTOR_TIMEOUT_MS;
    sampleKeys = positiveInteger('--sample-keys', values['sample-keys'], 1_000_000) ?? DEFAULT_SAMPLE_KEYS;
    const url = values['redis-url'];
    const files = { ca: values['tls-ca'], cert: values['tls-cert'], key: values['tls-key'] };
    if (url === undefined) {
      if (files.ca !== undefined || files.cert !== undefined || files.key !== undefined) {
        throw new UsageError(
          '--tls-ca, --tls-cert and --tls-key go with --redis-url (else use REDIS_TLS_CA, ...)',
        );
      }
      target = targetFromEnvironment(env);
    } else {
      const envPrefix = env.REDIS_KEY_PREFIX?.trim();
      target = {
        connection: targetFromUrl(url, files),
        keyPrefix: envPrefix === undefined || envPrefix === '' ? undefined : envPrefix,
      };
    }
    keyPrefix = values.prefix ?? target.keyPrefix ?? 'gh';
    if (!isValidKeyPrefix(keyPrefix)) {
      throw new UsageError(
        `${values.prefix === undefined ? 'REDIS_KEY_PREFIX' : '--prefix'} must be ${KEY_PREFIX_EXPECTED}`,
      );
    }
    if (values['app-user'] === '') throw new UsageError('--app-user must not be empty');
  } catch (error) {
    if (error instanceof UsageError) return fail(error.message);
    return fail(`unexpected error: ${error instanceof Error ? error.message : String(error)}`);
  }

  let report: DoctorReport;
  try {
    report = await runDoctor({
      connection: target.connection,
      keyPrefix,
      timeoutMs,
      sampleKeys,
      ...(values['app-user'] === undefined ? {} : { appUser: values['app-user'] }),
    });
  } catch (error) {
    if (error instanceof DoctorConnectionError) return fail(error.message);
    return fail(`unexpected error: ${error instanceof Error ? error.message : String(error)}`);
  }
  output.stdout(values.json === true ? `${JSON.stringify(report, null, 2)}\n` : renderReport(report));
  return report.summary.fail > 0 ? 1 : 0;
}
