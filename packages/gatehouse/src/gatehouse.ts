/**
 * createGatehouse: one entry object over one store and one key ring, with every primitive built
 * and ready, so a service assembles nothing by hand. The object is also what the adapters take:
 * `app.register(gatehouseFastify, gh)`, `gatehouseExpress(gh)`.
 *
 * ```ts
 * const gh = await createGatehouse({
 *   redis: process.env.REDIS_URL ?? 'memory',
 *   secretKeys: process.env.SECRET_KEYS!.split(','),
 *   origin: 'https://forms.example.com',
 *   sessions: { idleTimeout: '30m', absoluteTimeout: '12h', maxPerUser: 5 },
 *   rateLimits: { auth: '5/1m+2', api: { policy: '100/1m+10', whenStoreDown: 'open' } },
 * });
 * ```
 */
import { decodeSecretKey, KeyRing, SECRET_KEY_MIN_BYTES } from './crypto/keyring.js';
import { Csrf, type CsrfOptions } from './csrf/csrf.js';
import { Idempotency, type IdempotencyOptions } from './idempotency/idempotency.js';
import { Locks, type LocksOptions } from './locks/locks.js';
import { Nonces, type NoncesOptions } from './nonces/nonces.js';
import { RateLimits, type RateLimitsOptions } from './rate-limit/rate-limits.js';
import { Revocations, type RevocationsOptions } from './revocation/revocation.js';
import { Sessions, type SessionsOptions } from './sessions/sessions.js';
import { createStore } from './store/index.js';
import { parseRedisUrl, type RedisConnectionOptions } from './store/options.js';
import type { Store, StoreHealth } from './store/store.js';
import { toMs, type Duration } from './util/duration.js';
import { silentLogger, type Logger } from './util/logger.js';

export interface GatehouseOptions {
  /** Redis connection options, a `redis://` or `rediss://` URL, or `'memory'` (one process only). */
  readonly redis: RedisConnectionOptions | string;
  /** SECRET_KEYS, newest first: each at least 32 random bytes, as a Buffer or hex / base64url text. */
  readonly secretKeys: readonly (string | Buffer)[];
  /** The service's own origin (`https://host[:port]`): CSRF accepts unsafe requests only from it and `trustedOrigins`. */
  readonly origin: string;
  readonly trustedOrigins?: readonly string[];
  /** First part of every key and channel. Default `gh`. */
  readonly keyPrefix?: string;
  readonly sessions?: SessionsOptions;
  /** Named policies (`{ auth: '5/1m+2' }`), or the full RateLimits options. */
  readonly rateLimits?: RateLimitsOptions['policies'] | RateLimitsOptions;
  readonly csrf?: Omit<CsrfOptions, 'ownOrigin' | 'trustedOrigins'>;
  readonly nonces?: NoncesOptions;
  readonly locks?: LocksOptions;
  readonly revocations?: RevocationsOptions;
  readonly idempotency?: IdempotencyOptions;
  readonly logger?: Logger;
  /**
   * How long start-up waits for Redis before going on without it (requests then get 503 until
   * it answers, and health says so). Default 3s.
   */
  readonly readyTimeout?: Duration;
}

export interface Gatehouse {
  readonly store: Store;
  readonly keyRing: KeyRing;
  readonly sessions: Sessions;
  readonly csrf: Csrf;
  readonly nonces: Nonces;
  readonly revocations: Revocations;
  readonly idempotency: Idempotency;
  readonly rateLimits: RateLimits;
  readonly locks: Locks;
  /** The store's health: PING latency and facts per primary; never throws. */
  health(): Promise<StoreHealth>;
  /** Flushes buffered session activity, then closes the store (and its pub/sub). */
  close(): Promise<void>;
}

export async function createGatehouse(options: GatehouseOptions): Promise<Gatehouse> {
  const keyRing = new KeyRing(
    options.secretKeys.map((key, index) => secretKey(key, index, options.secretKeys.length)),
  );
  const logger = options.logger ?? silentLogger;
  const readyTimeoutMs = toMs('readyTimeout', options.readyTimeout ?? '3s');
  const store = createStore({
    redis: typeof options.redis === 'string' ? redisOption(options.redis) : options.redis,
    ...(options.keyPrefix === undefined ? {} : { keyPrefix: options.keyPrefix }),
    logger,
  });
  const rateLimitOptions: RateLimitsOptions =
    options.rateLimits === undefined
      ? { policies: {} }
      : isFullRateLimitOptions(options.rateLimits)
        ? options.rateLimits
        : { policies: options.rateLimits };
  const gatehouse: Gatehouse = {
    store,
    keyRing,
    sessions: new Sessions(store, keyRing, options.sessions),
    csrf: new Csrf(store, keyRing, {
      ...options.csrf,
      ownOrigin: options.origin,
      ...(options.trustedOrigins === undefined ? {} : { trustedOrigins: options.trustedOrigins }),
    }),
    nonces: new Nonces(store, keyRing, options.nonces),
    revocations: new Revocations(store, keyRing, options.revocations),
    idempotency: new Idempotency(store, keyRing, options.idempotency),
    rateLimits: new RateLimits(store, keyRing, rateLimitOptions),
    locks: new Locks(store, keyRing, { logger, ...options.locks }),
    health: () => store.health(),
    close: async () => {
      await gatehouse.sessions.close();
      await store.close();
    },
  };
  try {
    await store.waitUntilReady(readyTimeoutMs);
  } catch (error) {
    logger.warn({ error: String(error) }, 'Redis is not answering yet; gatehouse answers 503 until it does');
  }
  return gatehouse;
}

function secretKey(key: string | Buffer, index: number, count: number): Buffer {
  const bytes = typeof key === 'string' ? decodeSecretKey(key.trim()) : key;
  if (!bytes || bytes.length < SECRET_KEY_MIN_BYTES) {
    throw new TypeError(
      `secret key ${String(index + 1)} of ${String(count)}: expected at least ${String(SECRET_KEY_MIN_BYTES)} random bytes as a Buffer, hex or base64url`,
    );
  }
  return bytes;
}

function redisOption(text: string): RedisConnectionOptions | 'memory' {
  return text === 'memory' ? 'memory' : parseRedisUrl(text);
}

/** `{ policies: {...} }` is the full options; anything else is a map of named policies. */
function isFullRateLimitOptions(
  value: RateLimitsOptions['policies'] | RateLimitsOptions,
): value is RateLimitsOptions {
  const policies: unknown = (value as { policies?: unknown }).policies;
  return typeof policies === 'object' && policies !== null && !('policy' in policies);
}
