/**
 * The shape of the server's configuration, as `loadConfig` (packages/server/src/config.ts)
 * returns it: typed, with units in the names, and frozen.
 */
import type { RateLimitPolicy, RedisConnectionOptions } from 'gatehouse';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const RATE_LIMIT_POLICY_NAMES = ['auth', 'api', 'pdf', 'public', 'account', 'anonymous'] as const;
export type RateLimitPolicyName = (typeof RATE_LIMIT_POLICY_NAMES)[number];

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
  readonly nodeEnv: 'production' | 'development' | 'test';
  /** True when NODE_ENV was unset (development by default: the start-up log says so). */
  readonly nodeEnvDefaulted: boolean;
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
  /** The `iss` and `aud` of access tokens (`ACCESS_TOKEN_ISSUER`, `ACCESS_TOKEN_AUDIENCE`). */
  readonly accessTokens: { readonly issuer: string; readonly audience: string };
  /** Decoded keys, newest first; undefined in development means "generate into dataDir". */
  readonly secretKeys: readonly Buffer[] | undefined;
  /**
   * Number of trusted proxies in front of the service (0: use the socket address), or the
   * proxies' addresses and CIDR ranges: the library's `trustProxy`.
   */
  readonly trustProxy: number | readonly string[];
  readonly logLevel: LogLevel;
  readonly rateLimits: Readonly<Record<RateLimitPolicyName, RateLimitPolicy>>;
  /** Instances sharing one Redis: each admits its share of a limit while Redis is down. */
  readonly expectedInstances: number;
}
