/**
 * The guard rails of NODE_ENV=production: a production service does not start without shared
 * SECRET_KEYS, on the single-process memory store unless REDIS_ENABLED=false says so, or with
 * plaintext Redis to a host that is not this machine. Each refusal is one more problem of the
 * `ConfigError` that `loadConfig` (packages/server/src/config.ts) throws.
 */
import { isLoopbackHost, redisHosts } from '../redis-address.js';
import type { Reader } from './env-reader.js';
import type { StoreConfig } from './types.js';

/** What the guards look at, as `loadConfig` read it. */
export interface GuardedSettings {
  readonly secretKeys: readonly Buffer[] | undefined;
  /** Null when the store settings were refused (their problems are recorded already). */
  readonly store: StoreConfig | null;
  /** The variable the Redis address came from (REDIS_URL, REDIS_ADDR, ...), when one is set. */
  readonly redisAddressVariable: string | undefined;
}

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
}
