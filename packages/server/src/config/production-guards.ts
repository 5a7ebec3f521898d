/**
 * The guard rails of NODE_ENV=production: a production service does not start without shared
 * SECRET_KEYS, on the single-process memory store unless REDIS_ENABLED=false says so, with
 * cookies that may travel over plain HTTP, or with a plaintext connection that carries session
 * or patient data (Redis, PostgreSQL, Gotenberg) to a host that is not this machine. Each refusal
 * is one more problem of the `ConfigError` that `loadConfig` (packages/server/src/config.ts)
 * throws, naming the variable; values are printed redacted (packages/server/src/config/env-reader.ts).
 */
import { isLoopbackHost } from 'gatehouse';

import { redisHosts } from '../redis-address.js';
import type { Reader } from './env-reader.js';
import type { StoreConfig } from './types.js';

/** What the guards look at, as `loadConfig` read it. */
export interface GuardedSettings {
  readonly secretKeys: readonly Buffer[] | undefined;
  /** Null when the store settings were refused (their problems are recorded already). */
  readonly store: StoreConfig | null;
  /** The variable the Redis address came from (REDIS_URL, REDIS_ADDR, ...), when one is set. */
  readonly redisAddressVariable: string | undefined;
  readonly cookieSecure: boolean;
  readonly databaseUrl: string | undefined;
  readonly gotenbergUrl: string | undefined;
}

/** `sslmode` values with which libpq and node-postgres never fall back to plaintext. */
const TLS_SSLMODES: ReadonlySet<string> = new Set(['require', 'verify-ca', 'verify-full']);

/** Records a problem for every production guard the settings break. */
export function checkProductionGuards(reader: Reader, settings: GuardedSettings): void {
  const { secretKeys, store } = settings;
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
      const source = settings.redisAddressVariable ?? 'REDIS_URL';
      reader.problem(
        source,
        `${remote.host}:${remote.port}`,
        'NODE_ENV=production refuses plaintext Redis to a non-loopback host: use rediss:// (or REDIS_TLS=true)',
      );
    }
  }
  if (!settings.cookieSecure) {
    reader.problem(
      'COOKIE_SECURE',
      reader.raw('COOKIE_SECURE'),
      'NODE_ENV=production refuses cookies without Secure: serve over HTTPS (a TLS proxy in front) and leave COOKIE_SECURE unset',
    );
  }
  if (settings.databaseUrl !== undefined && plaintextPostgres(settings.databaseUrl)) {
    reader.problem(
      'DATABASE_URL',
      settings.databaseUrl,
      'NODE_ENV=production refuses PostgreSQL to a non-loopback host without TLS: add sslmode=require (or verify-full)',
    );
  }
  if (settings.gotenbergUrl !== undefined && plaintextRemoteHttp(settings.gotenbergUrl)) {
    reader.problem(
      'GOTENBERG_URL',
      settings.gotenbergUrl,
      'NODE_ENV=production refuses http:// to a non-loopback host (responses carry patient data): use https://',
    );
  }
}

/** An `http://` URL to a host that is not this machine. */
export function plaintextRemoteHttp(text: string): boolean {
  const url = new URL(text);
  return url.protocol !== 'https:' && !isLoopbackHost(unbracketed(url.hostname));
}

/**
 * A PostgreSQL URL that may carry data in plaintext off this machine: a TCP host that is not
 * loopback, without an `sslmode` that requires TLS. A Unix socket (`host=/run/postgresql`, or no
 * host) never leaves the machine.
 */
function plaintextPostgres(text: string): boolean {
  const url = new URL(text);
  const hosts = [url.hostname, url.searchParams.get('host') ?? '']
    .flatMap((host) => host.split(','))
    .map((host) => unbracketed(host.replace(/:\d+$/, '')))
    .filter((host) => host !== '' && !host.startsWith('/'));
  if (hosts.every(isLoopbackHost)) return false;
  return !TLS_SSLMODES.has(url.searchParams.get('sslmode') ?? '');
}

function unbracketed(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}
