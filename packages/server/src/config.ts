/**
 * The server's configuration: every environment variable of packages/server/README.md read once
 * into a typed, frozen object: the only place gatehouse reads the environment. Every problem is collected and
 * reported together in one `ConfigError` naming the variable, the value (redacted for secrets)
 * and what was expected, so nothing starts half-configured.
 *
 * An empty variable counts as unset (deployment tools often export empty strings).
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';

import {
  ConfigError,
  decodeSecretKey,
  DURATION_EXPECTED,
  isValidKeyPrefix,
  KEY_PREFIX_EXPECTED,
  MAX_REDIS_TIMEOUT_MS,
  parseDurationMs,
  parseRateLimitPolicy,
  parseRedisUrl,
  RATE_LIMIT_POLICY_EXPECTED,
  SECRET_KEY_MIN_BYTES,
  type ConfigProblem,
  type HostPort,
  type RateLimitPolicy,
  type RedisConnectionOptions,
  type RedisTlsOptions,
} from 'gatehouse';

import { isLoopbackHost, parseHostPort, redisHosts } from './redis-address.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const RATE_LIMIT_POLICY_NAMES = ['auth', 'api', 'pdf', 'public'] as const;
export type RateLimitPolicyName = (typeof RATE_LIMIT_POLICY_NAMES)[number];

const DEFAULT_RATE_LIMITS: Record<RateLimitPolicyName, string> = {
  auth: '5/1m+2',
  api: '100/1m+10',
  pdf: '10/1m+2',
  public: '30/1m+10',
};

/** Where gatehouse keeps its state: Redis, or the single-process memory store. */
export type StoreConfig =
  | {
      readonly kind: 'memory';
      /** True when `REDIS_ENABLED=false` was set; false when Redis was simply not configured. */
      readonly explicit: boolean;
    }
  | {
      readonly kind: 'redis';
      readonly connection: RedisConnectionOptions;
    };

export interface Config {
  readonly nodeEnv: string;
  readonly production: boolean;
  readonly host: string;
  readonly port: number;
  readonly store: StoreConfig;
  /** First part of every Redis key and channel (`REDIS_KEY_PREFIX`, default `gh`). */
  readonly keyPrefix: string;
  /** `postgres://` URL, or undefined for embedded PGlite in `dataDir`. */
  readonly databaseUrl: string | undefined;
  readonly dataDir: string;
  readonly sessions: {
    readonly idleTimeoutMs: number;
    readonly absoluteTimeoutMs: number;
    readonly maxPerUser: number;
    readonly durable: boolean;
  };
  readonly cookieSecure: boolean;
  /** Extra origins allowed for unsafe requests, besides the service's own. */
  readonly trustedOrigins: readonly string[];
  readonly gotenbergUrl: string | undefined;
  /** Decoded keys, newest first; undefined in development means "generate into dataDir". */
  readonly secretKeys: readonly Buffer[] | undefined;
  /** Number of trusted proxies in front of the service; 0 means use the socket address. */
  readonly trustProxy: number;
  /** Lower-cased. */
  readonly adminEmails: readonly string[];
  readonly logLevel: LogLevel;
  readonly rateLimits: Readonly<Record<RateLimitPolicyName, RateLimitPolicy>>;
  /** Instances sharing one Redis: each admits its share of a limit while Redis is down. */
  readonly expectedInstances: number;
}

type Env = Readonly<Record<string, string | undefined>>;

const SECRET_VARIABLES = new Set(['REDIS_PASSWORD', 'REDIS_SENTINEL_PASSWORD', 'SECRET_KEYS']);
const URL_VARIABLES = new Set(['REDIS_URL', 'DATABASE_URL']);

/**
 * A URL with everything between `://` and the last `@` replaced, by text and not by parsing: a
 * password with an unencoded `/`, `#` or `?` would otherwise spill into the path a parser sees.
 */
export function redactUrl(text: string): string {
  const start = text.indexOf('://');
  const at = text.lastIndexOf('@');
  if (start === -1 || at < start) return text;
  return `${text.slice(0, start + 3)}***${text.slice(at)}`;
}

/** A value as it may appear in an error message: quoted, shortened, and never a secret. */
function printable(variable: string, value: string): string {
  if (SECRET_VARIABLES.has(variable)) return `(redacted, ${String(value.length)} characters)`;
  const shown = URL_VARIABLES.has(variable) ? redactUrl(value) : value;
  const short = shown.length > 80 ? `${shown.slice(0, 77)}...` : shown;
  return JSON.stringify(short);
}

class Reader {
  readonly problems: ConfigProblem[] = [];

  constructor(private readonly env: Env) {}

  raw(variable: string): string | undefined {
    const value = this.env[variable];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  }

  problem(variable: string, value: string | undefined, expected: string): void {
    this.problems.push({
      variable,
      value: value === undefined ? '(unset)' : printable(variable, value),
      expected,
    });
  }

  string(variable: string, fallback: string): string {
    return this.raw(variable) ?? fallback;
  }

  parsed<T>(variable: string, fallback: T, parse: (text: string) => T | undefined, expected: string): T {
    const text = this.raw(variable);
    if (text === undefined) return fallback;
    const value = parse(text);
    if (value === undefined) {
      this.problem(variable, text, `expected ${expected}`);
      return fallback;
    }
    return value;
  }

  boolean(variable: string, fallback: boolean): boolean {
    return this.parsed(variable, fallback, parseBoolean, 'true or false');
  }

  integer(variable: string, fallback: number, min: number, max: number): number {
    return this.parsed(
      variable,
      fallback,
      (text) => {
        if (!/^\d{1,10}$/.test(text)) return undefined;
        const n = Number(text);
        return n >= min && n <= max ? n : undefined;
      },
      `an integer from ${min} to ${max}`,
    );
  }

  duration(variable: string, fallback: string, minMs: number, maxMs = Number.MAX_SAFE_INTEGER): number {
    const fallbackMs = parseDurationMs(fallback) ?? 0;
    const range =
      maxMs === Number.MAX_SAFE_INTEGER
        ? `at least ${String(minMs)} ms`
        : `from ${String(minMs)} ms to ${String(maxMs)} ms`;
    return this.parsed(
      variable,
      fallbackMs,
      (text) => {
        const ms = parseDurationMs(text);
        return ms !== undefined && ms >= minMs && ms <= maxMs ? ms : undefined;
      },
      `${DURATION_EXPECTED}, ${range}`,
    );
  }

  list(variable: string): string[] {
    const text = this.raw(variable);
    if (text === undefined) return [];
    return text
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item !== '');
  }

  file(variable: string): string | undefined {
    const path = this.raw(variable);
    if (path === undefined) return undefined;
    try {
      return readFileSync(path, 'utf8');
    } catch (error) {
      const reason = error instanceof Error && 'code' in error ? String(error.code) : 'unreadable';
      this.problem(variable, path, `expected a readable PEM file (${reason})`);
      return undefined;
    }
  }
}

function parseBoolean(text: string): boolean | undefined {
  const lower = text.toLowerCase();
  if (lower === 'true' || lower === '1') return true;
  if (lower === 'false' || lower === '0') return false;
  return undefined;
}

function parseOrigin(text: string): string | undefined {
  try {
    const url = new URL(text);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
    if (url.origin !== text.replace(/\/$/, '')) return undefined;
    return url.origin;
  } catch {
    return undefined;
  }
}

function parseHttpUrl(text: string): string | undefined {
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:'
      ? url.toString().replace(/\/$/, '')
      : undefined;
  } catch {
    return undefined;
  }
}

function parseHostPortList(reader: Reader, variable: string): HostPort[] {
  const nodes: HostPort[] = [];
  for (const item of reader.list(variable)) {
    const node = parseHostPort(item);
    if (node) nodes.push(node);
    else
      reader.problem(
        variable,
        reader.raw(variable),
        `expected host:port,host:port,... ("${item}" is not host:port)`,
      );
  }
  if (reader.list(variable).length === 0) {
    reader.problem(variable, reader.raw(variable), 'expected at least one host:port');
  }
  return nodes;
}

function readTls(reader: Reader, schemeSaysTls: boolean | undefined): boolean | RedisTlsOptions {
  const explicit = reader.parsed('REDIS_TLS', undefined, parseBoolean, 'true or false');
  const ca = reader.file('REDIS_TLS_CA');
  const cert = reader.file('REDIS_TLS_CERT');
  const key = reader.file('REDIS_TLS_KEY');
  const hasFiles = reader.raw('REDIS_TLS_CA') ?? reader.raw('REDIS_TLS_CERT') ?? reader.raw('REDIS_TLS_KEY');
  if ((reader.raw('REDIS_TLS_CERT') === undefined) !== (reader.raw('REDIS_TLS_KEY') === undefined)) {
    reader.problem(
      reader.raw('REDIS_TLS_CERT') === undefined ? 'REDIS_TLS_CERT' : 'REDIS_TLS_KEY',
      undefined,
      'REDIS_TLS_CERT and REDIS_TLS_KEY (the client certificate and its key) must be set together',
    );
  }
  let enabled: boolean;
  if (schemeSaysTls !== undefined) {
    enabled = schemeSaysTls;
    if (explicit !== undefined && explicit !== schemeSaysTls) {
      reader.problem(
        'REDIS_TLS',
        reader.raw('REDIS_TLS'),
        `disagrees with REDIS_URL, whose scheme is ${schemeSaysTls ? 'rediss://' : 'redis://'}`,
      );
    }
    if (!schemeSaysTls && hasFiles !== undefined) {
      reader.problem(
        'REDIS_URL',
        reader.raw('REDIS_URL'),
        'REDIS_TLS_* files are set: use rediss:// for TLS',
      );
    }
  } else {
    enabled = explicit ?? hasFiles !== undefined;
    if (explicit === false && hasFiles !== undefined) {
      reader.problem('REDIS_TLS', 'false', 'REDIS_TLS_* files are set: remove them or set REDIS_TLS=true');
    }
  }
  if (!enabled) return false;
  const material: { ca?: string; cert?: string; key?: string } = {};
  if (ca !== undefined) material.ca = ca;
  if (cert !== undefined) material.cert = cert;
  if (key !== undefined) material.key = key;
  return Object.keys(material).length === 0 ? true : material;
}

const REDIS_ADDRESS_VARIABLES = [
  'REDIS_URL',
  'REDIS_ADDR',
  'REDIS_SENTINELS',
  'REDIS_CLUSTER_NODES',
] as const;

/** The store settings, or null when they were refused (the problems are recorded). */
function readStore(reader: Reader): StoreConfig | null {
  const enabled = reader.parsed('REDIS_ENABLED', undefined, parseBoolean, 'true or false');
  const url = reader.raw('REDIS_URL');
  const addr = reader.raw('REDIS_ADDR');
  const sentinels = reader.raw('REDIS_SENTINELS');
  const chosen = REDIS_ADDRESS_VARIABLES.filter((variable) => reader.raw(variable) !== undefined);

  if (enabled === false) return { kind: 'memory', explicit: true };
  if (chosen.length === 0) {
    if (enabled === true) {
      reader.problem(
        'REDIS_ENABLED',
        'true',
        'set REDIS_URL, REDIS_ADDR, REDIS_SENTINELS or REDIS_CLUSTER_NODES, or REDIS_ENABLED=false',
      );
    }
    for (const orphan of ['REDIS_SENTINEL_NAME', 'REDIS_USERNAME', 'REDIS_PASSWORD', 'REDIS_DB']) {
      if (reader.raw(orphan) !== undefined) {
        reader.problem(
          orphan,
          reader.raw(orphan),
          'set without a Redis address (REDIS_URL, REDIS_ADDR, ...)',
        );
      }
    }
    return { kind: 'memory', explicit: false };
  }
  if (chosen.length > 1) {
    reader.problem(
      chosen[1] ?? '',
      reader.raw(chosen[1] ?? ''),
      `conflicts with ${chosen[0] ?? ''}: set only one`,
    );
    readTls(reader, undefined);
    return null;
  }

  let username = reader.raw('REDIS_USERNAME');
  let password = reader.raw('REDIS_PASSWORD');
  let db = reader.raw('REDIS_DB') === undefined ? undefined : reader.integer('REDIS_DB', 0, 0, 15);
  const common = {
    commandTimeoutMs: reader.duration('REDIS_COMMAND_TIMEOUT', '500ms', 1, MAX_REDIS_TIMEOUT_MS),
  };

  if (url !== undefined) {
    let parsed;
    try {
      parsed = parseRedisUrl(url);
    } catch (error) {
      reader.problem('REDIS_URL', url, `expected redis:// or rediss:// URL (${(error as Error).message})`);
      readTls(reader, undefined);
      return null;
    }
    for (const [variable, fromEnv, fromUrl] of [
      ['REDIS_USERNAME', username, parsed.username],
      ['REDIS_PASSWORD', password, parsed.password],
      [
        'REDIS_DB',
        db === undefined ? undefined : String(db),
        parsed.db === undefined ? undefined : String(parsed.db),
      ],
    ] as const) {
      if (fromEnv !== undefined && fromUrl !== undefined && fromEnv !== fromUrl) {
        reader.problem(
          variable,
          reader.raw(variable),
          'disagrees with the value inside REDIS_URL: set it in one place',
        );
      }
    }
    username = parsed.username ?? username;
    password = parsed.password ?? password;
    db = parsed.db ?? db;
    const tls = readTls(reader, parsed.tls === true);
    return {
      kind: 'redis',
      connection: withCredentials(
        { topology: 'standalone', host: parsed.host, port: parsed.port, tls, ...common },
        username,
        password,
        db,
      ),
    };
  }

  const tls = readTls(reader, undefined);
  if (addr !== undefined) {
    const node = parseHostPort(addr);
    if (!node) {
      reader.problem('REDIS_ADDR', addr, 'expected host:port, e.g. 10.0.0.5:6379');
      return null;
    }
    return {
      kind: 'redis',
      connection: withCredentials(
        { topology: 'standalone', ...node, tls, ...common },
        username,
        password,
        db,
      ),
    };
  }

  if (sentinels !== undefined) {
    const nodes = parseHostPortList(reader, 'REDIS_SENTINELS');
    const name = reader.raw('REDIS_SENTINEL_NAME');
    if (name === undefined) reader.problem('REDIS_SENTINEL_NAME', undefined, 'required with REDIS_SENTINELS');
    const sentinelUsername = reader.raw('REDIS_SENTINEL_USERNAME');
    const sentinelPassword = reader.raw('REDIS_SENTINEL_PASSWORD');
    return {
      kind: 'redis',
      connection: withCredentials(
        {
          topology: 'sentinel',
          sentinels: nodes,
          name: name ?? '',
          tls,
          ...common,
          ...(sentinelUsername === undefined ? {} : { sentinelUsername }),
          ...(sentinelPassword === undefined ? {} : { sentinelPassword }),
        },
        username,
        password,
        db,
      ),
    };
  }

  const nodes = parseHostPortList(reader, 'REDIS_CLUSTER_NODES');
  if (db !== undefined && db !== 0) {
    reader.problem('REDIS_DB', String(db), 'Redis Cluster has only database 0: leave REDIS_DB unset');
  }
  return {
    kind: 'redis',
    connection: withCredentials(
      { topology: 'cluster', nodes, tls, ...common },
      username,
      password,
      undefined,
    ),
  };
}

function withCredentials<T extends RedisConnectionOptions>(
  options: T,
  username: string | undefined,
  password: string | undefined,
  db: number | undefined,
): T {
  return {
    ...options,
    ...(username === undefined ? {} : { username }),
    ...(password === undefined ? {} : { password }),
    ...(db === undefined ? {} : { db }),
  };
}

function readSecretKeys(reader: Reader): Buffer[] | undefined {
  const items = reader.list('SECRET_KEYS');
  if (items.length === 0) return undefined;
  const keys: Buffer[] = [];
  items.forEach((item, index) => {
    const key = decodeSecretKey(item);
    if (key === undefined || key.length < SECRET_KEY_MIN_BYTES) {
      reader.problem(
        'SECRET_KEYS',
        item,
        `key ${index + 1} of ${items.length}: expected at least ${SECRET_KEY_MIN_BYTES} random bytes as hex or base64url ` +
          `(generate one with: node -e "console.log(crypto.randomBytes(32).toString('hex'))")`,
      );
    } else {
      keys.push(key);
    }
  });
  return keys;
}

function readRateLimits(reader: Reader, env: Env): Record<RateLimitPolicyName, RateLimitPolicy> {
  const known = new Set<string>(RATE_LIMIT_POLICY_NAMES.map((name) => `RATE_LIMIT_${name.toUpperCase()}`));
  for (const variable of Object.keys(env)) {
    if (variable.startsWith('RATE_LIMIT_') && !known.has(variable) && reader.raw(variable) !== undefined) {
      reader.problem(
        variable,
        reader.raw(variable),
        `unknown policy: expected one of ${[...known].join(', ')}`,
      );
    }
  }
  const limits = {} as Record<RateLimitPolicyName, RateLimitPolicy>;
  for (const name of RATE_LIMIT_POLICY_NAMES) {
    const fallback = parseRateLimitPolicy(DEFAULT_RATE_LIMITS[name]);
    if (!fallback) throw new Error(`default policy ${name} does not parse`);
    limits[name] = reader.parsed(
      `RATE_LIMIT_${name.toUpperCase()}`,
      fallback,
      parseRateLimitPolicy,
      RATE_LIMIT_POLICY_EXPECTED,
    );
  }
  return limits;
}

function deepFreeze<T>(value: T): T {
  if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value)) return value;
  for (const inner of Object.values(value)) deepFreeze(inner);
  return Object.freeze(value);
}

/**
 * Reads the configuration from `env` (default `process.env`). Throws `ConfigError` listing
 * every problem when any value is refused, including the production guards of API.md.
 */
export function loadConfig(env: Env = process.env): Config {
  const reader = new Reader(env);
  const nodeEnv = reader.string('NODE_ENV', 'development');
  const production = nodeEnv === 'production';

  const host = reader.string('HOST', '127.0.0.1');
  if (isIP(host) === 0 && !/^[A-Za-z0-9_.-]{1,253}$/.test(host)) {
    reader.problem('HOST', host, 'expected an IP address or a host name');
  }
  const port = reader.integer('PORT', 3000, 0, 65535);
  const store = readStore(reader);
  const keyPrefix = reader.parsed(
    'REDIS_KEY_PREFIX',
    'gh',
    (t) => (isValidKeyPrefix(t) ? t : undefined),
    KEY_PREFIX_EXPECTED,
  );

  const databaseUrl = reader.parsed(
    'DATABASE_URL',
    undefined,
    (text) => (/^postgres(?:ql)?:\/\/./.test(text) && URL.canParse(text) ? text : undefined),
    'a postgres:// or postgresql:// URL',
  );
  const dataDir = reader.string('DATA_DIR', './data');

  const idleTimeoutMs = reader.duration('SESSION_IDLE_TIMEOUT', '30m', 1000);
  const absoluteTimeoutMs = reader.duration('SESSION_ABSOLUTE_TIMEOUT', '12h', 1000);
  if (idleTimeoutMs > absoluteTimeoutMs) {
    reader.problem(
      'SESSION_IDLE_TIMEOUT',
      reader.raw('SESSION_IDLE_TIMEOUT') ?? '30m',
      `must not exceed SESSION_ABSOLUTE_TIMEOUT (${reader.raw('SESSION_ABSOLUTE_TIMEOUT') ?? '12h'})`,
    );
  }
  const maxPerUser = reader.integer('SESSION_MAX_PER_USER', 5, 1, 1000);
  const expectedInstances = reader.integer('GATEHOUSE_EXPECTED_INSTANCES', 1, 1, 1000);
  const durable = reader.boolean('SESSION_DURABLE', true);
  const cookieSecure = reader.boolean('COOKIE_SECURE', production);

  const trustedOrigins = reader.list('TRUSTED_ORIGINS').flatMap((item) => {
    const origin = parseOrigin(item);
    if (origin === undefined) {
      reader.problem(
        'TRUSTED_ORIGINS',
        item,
        'expected origins like https://app.example.com (scheme, host, port; no path)',
      );
      return [];
    }
    return [origin];
  });
  const gotenbergUrl = reader.parsed('GOTENBERG_URL', undefined, parseHttpUrl, 'an http:// or https:// URL');
  const secretKeys = readSecretKeys(reader);
  const trustProxy = reader.parsed(
    'TRUST_PROXY',
    0,
    (text) => {
      const flag = parseBoolean(text);
      if (flag !== undefined && !/^\d+$/.test(text)) return flag ? 1 : 0;
      return /^\d{1,2}$/.test(text) ? Number(text) : undefined;
    },
    'false, true (one proxy) or the number of trusted proxies (0-99)',
  );
  const adminEmails = reader.list('ADMIN_EMAILS').flatMap((item) => {
    if (!/^[^\s@]+@[^\s@]+$/.test(item)) {
      reader.problem('ADMIN_EMAILS', item, 'expected comma-separated email addresses');
      return [];
    }
    return [item.toLowerCase()];
  });
  const logLevel = reader.parsed(
    'LOG_LEVEL',
    'info',
    (text) => LOG_LEVELS.find((level) => level === text.toLowerCase()),
    LOG_LEVELS.join(', '),
  );
  const rateLimits = readRateLimits(reader, env);

  if (production) {
    if (secretKeys === undefined) {
      reader.problem(
        'SECRET_KEYS',
        undefined,
        'required when NODE_ENV=production (every instance must share them)',
      );
    }
    if (store?.kind === 'memory' && !store.explicit) {
      reader.problem(
        'REDIS_URL',
        undefined,
        'NODE_ENV=production needs Redis (the memory store is single-instance); set REDIS_ENABLED=false to accept that',
      );
    }
    if (store?.kind === 'redis' && store.connection.tls === false) {
      const remote = redisHosts(store.connection).find((node) => !isLoopbackHost(node.host));
      if (remote) {
        const source =
          REDIS_ADDRESS_VARIABLES.find((variable) => reader.raw(variable) !== undefined) ?? 'REDIS_URL';
        reader.problem(
          source,
          `${remote.host}:${remote.port}`,
          'NODE_ENV=production refuses plaintext Redis to a non-loopback host: use rediss:// (or REDIS_TLS=true)',
        );
      }
    }
  }

  if (reader.problems.length > 0 || store === null) throw new ConfigError(reader.problems);
  return deepFreeze({
    nodeEnv,
    production,
    host,
    port,
    store,
    keyPrefix,
    databaseUrl,
    dataDir,
    sessions: { idleTimeoutMs, absoluteTimeoutMs, maxPerUser, durable },
    cookieSecure,
    trustedOrigins,
    gotenbergUrl,
    secretKeys,
    trustProxy,
    adminEmails,
    logLevel,
    rateLimits,
    expectedInstances,
  });
}

/** A one-line, secret-free description of where state lives, for the start-up log. */
export function describeStore(config: Config): string {
  if (config.store.kind === 'memory') {
    return 'memory store (SINGLE INSTANCE ONLY: sessions, limits and locks are not shared between processes)';
  }
  const c = config.store.connection;
  const hosts = redisHosts(c)
    .map((node) => `${node.host}:${node.port}`)
    .join(',');
  const tls = c.tls === false || c.tls === undefined ? 'plaintext' : 'TLS';
  const user = c.username === undefined ? 'default user' : `user ${c.username}`;
  return `Redis ${c.topology} at ${hosts} (${tls}, ${user}, prefix ${config.keyPrefix})`;
}
