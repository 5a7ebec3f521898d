/**
 * The server's configuration: every environment variable of docs/configuration.md read once into
 * a typed, frozen object: the only place gatehouse reads the environment. Every problem is
 * collected and reported together in one `ConfigError` naming the variable, the value (redacted
 * for secrets) and what was expected, so nothing starts half-configured.
 *
 * Every variable is named in this file, so one search finds what reads it. Its parts: the shape
 * of the result (packages/server/src/config/types.ts), reading and parsing one variable
 * (packages/server/src/config/env-reader.ts), and the guard rails of NODE_ENV=production
 * (packages/server/src/config/production-guards.ts).
 */
import { isIP } from 'node:net';

import {
  ConfigError,
  decodeSecretKey,
  isValidKeyPrefix,
  KEY_PREFIX_EXPECTED,
  MAX_REDIS_TIMEOUT_MS,
  MAX_TRUSTED_PROXY_COUNT,
  parseRateLimitPolicy,
  parseRedisUrl,
  parseTrustedProxies,
  RATE_LIMIT_POLICY_EXPECTED,
  SECRET_KEY_MIN_BYTES,
  type HostPort,
  type RateLimitPolicy,
  type RedisConnectionOptions,
  type RedisTlsOptions,
} from 'gatehouse';

import { parseBoolean, parseHttpUrl, parseOrigin, Reader, type Env } from './config/env-reader.js';
import { checkProductionGuards } from './config/production-guards.js';
import {
  LOG_LEVELS,
  RATE_LIMIT_POLICY_NAMES,
  type Config,
  type RateLimitPolicyName,
  type StoreConfig,
} from './config/types.js';
import { parseHostPort, redisHosts } from './redis-address.js';

export { redactUrl } from './config/env-reader.js';
export {
  LOG_LEVELS,
  RATE_LIMIT_POLICY_NAMES,
  type Config,
  type LogLevel,
  type RateLimitPolicyName,
  type StoreConfig,
} from './config/types.js';

const NODE_ENVS = ['production', 'development', 'test'] as const;

const CLAIM_TEXT_EXPECTED = '1 to 256 printable characters without spaces (a URL or a name)';

/** An `iss` or `aud` value: what verifiers compare byte for byte, so nothing invisible in it. */
function parseClaimText(text: string): string | undefined {
  return /^[\x21-\x7e]{1,256}$/.test(text) ? text : undefined;
}

/** The command that grants the dashboard's role, as refusals name it. */
export const GRANT_ADMIN_COMMAND = 'gatehouse users grant-role EMAIL admin';

const DEFAULT_RATE_LIMITS: Record<RateLimitPolicyName, string> = {
  auth: '5/1m+2',
  api: '100/1m+10',
  pdf: '10/1m+2',
  public: '30/1m+10',
  account: '10/15m',
  anonymous: '60/1m+30',
};

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

/**
 * `TRUST_PROXY`: a number of proxies (`true` = 1), or the proxies' addresses and CIDR ranges,
 * whose `X-Forwarded-For` alone is believed (the library's `trustProxy`).
 */
function readTrustProxy(reader: Reader): number | readonly string[] {
  const text = reader.raw('TRUST_PROXY');
  if (text === undefined) return 0;
  const flag = parseBoolean(text);
  if (flag !== undefined && !/^\d+$/.test(text)) return flag ? 1 : 0;
  if (/^\d+$/.test(text)) {
    const count = Number(text);
    if (count <= MAX_TRUSTED_PROXY_COUNT) return count;
    reader.problem('TRUST_PROXY', text, `expected at most ${String(MAX_TRUSTED_PROXY_COUNT)} proxies`);
    return 0;
  }
  const entries = reader.list('TRUST_PROXY');
  const parsed = parseTrustedProxies(entries);
  if (parsed.ok) return entries;
  reader.problem(
    'TRUST_PROXY',
    text,
    `expected false, true (one proxy), the number of trusted proxies, or proxy addresses and CIDR ranges (10.0.0.0/8,127.0.0.1): ${JSON.stringify(parsed.badEntry)} is neither`,
  );
  return 0;
}

function deepFreeze<T>(value: T): T {
  if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value)) return value;
  for (const inner of Object.values(value)) deepFreeze(inner);
  return Object.freeze(value);
}

/**
 * Reads the configuration from `env` (default `process.env`). Throws `ConfigError` listing
 * every problem when any value is refused, including the guard rails of NODE_ENV=production
 * (packages/server/src/config/production-guards.ts).
 */
export function loadConfig(env: Env = process.env): Config {
  const reader = new Reader(env);
  // Spelled exactly: `prod` or `Production` must not run as development with its generated keys.
  const nodeEnv = reader.parsed(
    'NODE_ENV',
    'development',
    (text) => NODE_ENVS.find((name) => name === text),
    NODE_ENVS.join(', '),
  );
  const nodeEnvDefaulted = reader.raw('NODE_ENV') === undefined;
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
  const accessTokenIssuer = reader.parsed(
    'ACCESS_TOKEN_ISSUER',
    'gatehouse',
    parseClaimText,
    CLAIM_TEXT_EXPECTED,
  );
  const accessTokenAudience = reader.parsed(
    'ACCESS_TOKEN_AUDIENCE',
    'gatehouse',
    parseClaimText,
    CLAIM_TEXT_EXPECTED,
  );
  const secretKeys = readSecretKeys(reader);
  const trustProxy = readTrustProxy(reader);
  // It granted `admin` to whoever signed up first with a listed email: roles are given by command
  // now (packages/server/src/cli/users.ts), and a deployment still setting it must not start
  // believing its admins are configured.
  if (reader.raw('ADMIN_EMAILS') !== undefined) {
    reader.problem(
      'ADMIN_EMAILS',
      reader.raw('ADMIN_EMAILS'),
      `no longer exists: unset it, and grant the admin role with "${GRANT_ADMIN_COMMAND}" (docs/configuration.md, "Roles")`,
    );
  }
  const logLevel = reader.parsed(
    'LOG_LEVEL',
    'info',
    (text) => LOG_LEVELS.find((level) => level === text.toLowerCase()),
    LOG_LEVELS.join(', '),
  );
  const rateLimits = readRateLimits(reader, env);

  if (production) {
    checkProductionGuards(reader, {
      secretKeys,
      store,
      cookieSecure,
      databaseUrl,
      gotenbergUrl,
      redisAddressVariable: REDIS_ADDRESS_VARIABLES.find((variable) => reader.raw(variable) !== undefined),
    });
  }

  if (reader.problems.length > 0 || store === null) throw new ConfigError(reader.problems);
  // Nodes that Sentinel or Cluster name get the rule the configured ones got above.
  const guardedStore: StoreConfig =
    production && store.kind === 'redis'
      ? { kind: 'redis', connection: { ...store.connection, requireTlsOffLoopback: true } }
      : store;
  return deepFreeze({
    nodeEnv,
    nodeEnvDefaulted,
    production,
    host,
    port,
    store: guardedStore,
    keyPrefix,
    databaseUrl,
    dataDir,
    sessions: { idleTimeoutMs, absoluteTimeoutMs, maxPerUser, durable },
    cookieSecure,
    trustedOrigins,
    gotenbergUrl,
    accessTokens: { issuer: accessTokenIssuer, audience: accessTokenAudience },
    secretKeys,
    trustProxy,
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
