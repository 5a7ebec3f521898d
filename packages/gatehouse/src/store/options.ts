/**
 * How to reach Redis: one of three topologies, with optional TLS and ACL credentials, built
 * directly or from a URL with `parseRedisUrl`. The library reads no environment variable; the
 * server builds these from its own (packages/server/src/config.ts).
 */

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/**
 * TLS material as PEM text (the file contents, not paths). Certificates are always verified
 * against `ca` (or the system's CAs when `ca` is absent); there is no option to turn that off.
 */
export interface RedisTlsOptions {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
}

export interface RedisCommonOptions {
  /** ACL user name; absent means the `default` user. */
  readonly username?: string;
  readonly password?: string;
  /** `true` for TLS with the system's CAs, an object for your own CA and client certificate. */
  readonly tls?: boolean | RedisTlsOptions;
  /** How long one command may take before it fails with `StoreUnavailableError`. Default 500 ms. */
  readonly commandTimeoutMs?: number;
  /** How long one TCP/TLS connection attempt may take. Default 2000 ms. */
  readonly connectTimeoutMs?: number;
  /** Upper bound of the reconnect backoff (exponential from 50 ms, with jitter). Default 2000 ms. */
  readonly reconnectMaxDelayMs?: number;
  /**
   * With `tls` off: refuse every connection to a host that is not loopback, including the nodes
   * a Sentinel or a Cluster names (which no configuration check can see in advance). The
   * server sets it in production, where it also refuses such configured hosts at start.
   * Default false.
   */
  readonly requireTlsOffLoopback?: boolean;
}

/** True for hosts that never leave the machine: `localhost`, `127.x.x.x`, `::1`. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

export interface StandaloneOptions extends RedisCommonOptions {
  readonly topology: 'standalone';
  readonly host: string;
  readonly port: number;
  readonly db?: number;
}

export interface SentinelOptions extends RedisCommonOptions {
  readonly topology: 'sentinel';
  readonly sentinels: readonly HostPort[];
  /** The name the Sentinels monitor the primary under (`sentinel monitor <name> ...`). */
  readonly name: string;
  readonly db?: number;
  /** Credentials of the Sentinels themselves, when they require them. */
  readonly sentinelUsername?: string;
  readonly sentinelPassword?: string;
  /** How often to ask the Sentinels for the current primary, in case a notification is missed. Default 2000 ms. */
  readonly sentinelScanIntervalMs?: number;
}

export interface ClusterOptions extends RedisCommonOptions {
  readonly topology: 'cluster';
  /** Some of the cluster's nodes (three is plenty); the rest are discovered. */
  readonly nodes: readonly HostPort[];
}

export type RedisConnectionOptions = StandaloneOptions | SentinelOptions | ClusterOptions;

export type RedisTopology = RedisConnectionOptions['topology'];

/**
 * Parses `redis://[user[:password]@]host[:port][/db]` or `rediss://...` into standalone options.
 * Throws a `TypeError` that never contains the password.
 */
export function parseRedisUrl(url: string): StandaloneOptions {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError('not a URL: expected redis://[user[:password]@]host[:port][/db] or rediss://...');
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new TypeError(`scheme ${parsed.protocol} is not redis: or rediss:`);
  }
  if (parsed.hostname === '') throw new TypeError('the URL has no host');
  if (parsed.search !== '' || parsed.hash !== '') {
    throw new TypeError('query strings and fragments are not supported in the Redis URL');
  }
  const port = parsed.port === '' ? 6379 : Number(parsed.port);
  if (port < 1) throw new TypeError('port 0 is not a Redis port');
  const dbText = parsed.pathname.replace(/^\//, '');
  const db = dbText === '' ? undefined : parseDb(dbText);
  // Not echoed: with an unencoded '/' in the password, part of it would land in the path.
  if (db === null)
    throw new TypeError(
      'the path is not a database number from 0 to 15 (percent-encode / # ? @ in a password)',
    );
  // URL keeps IPv6 hosts in brackets; node's net.connect wants them bare.
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
  return {
    topology: 'standalone',
    host,
    port,
    ...(db === undefined ? {} : { db }),
    ...(parsed.username === '' ? {} : { username: decodeURIComponent(parsed.username) }),
    ...(parsed.password === '' ? {} : { password: decodeURIComponent(parsed.password) }),
    ...(parsed.protocol === 'rediss:' ? { tls: true } : {}),
  };
}

/** A Redis logical database number (0-15 on a default server), or `null` when it is not one. */
function parseDb(text: string): number | null {
  if (!/^\d{1,2}$/.test(text)) return null;
  const db = Number(text);
  return db <= 15 ? db : null;
}
