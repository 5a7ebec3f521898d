/**
 * gatehouse: sessions, CSRF, nonces, revocation, rate limits, locks, health and audit for
 * horizontally scaled Node.js services, kept in Redis. This is the curated public surface;
 * anything not exported here is internal and may change.
 */
export {
  ConfigError,
  ERROR_CATALOGUE,
  GatehouseError,
  KeyInvalidError,
  StoreCommandError,
  StorePermissionError,
  StoreUnavailableError,
  type ConfigProblem,
  type ErrorCode,
} from './errors.js';
export { describeStore, loadConfig, type Config, type LogLevel, type StoreConfig } from './config.js';
export { parseRateLimitPolicy, type RateLimitPolicy } from './rate-limit/policy.js';
export { aclRule } from './store/acl.js';
export { createStore, type CreateStoreOptions } from './store/index.js';
export { KeySpace } from './store/keys.js';
export { MemoryStore, type MemoryStoreOptions } from './store/memory.js';
export {
  parseRedisUrl,
  type ClusterOptions,
  type HostPort,
  type RedisConnectionOptions,
  type RedisTlsOptions,
  type SentinelOptions,
  type StandaloneOptions,
} from './store/options.js';
export { RedisStore, type RedisStoreOptions } from './store/redis.js';
export type {
  ProbeResult,
  ServerInfo,
  Store,
  StoreHealth,
  StoreMode,
  StoreNodeHealth,
} from './store/store.js';
export { parseDurationMs, toMs, type Duration } from './util/duration.js';
export { createConsoleLogger, type Logger } from './util/logger.js';
