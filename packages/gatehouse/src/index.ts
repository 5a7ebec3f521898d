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
  LockHeldError,
  LockLostError,
  RouteDefinitionError,
  StoreCommandError,
  StorePermissionError,
  StoreUnavailableError,
  type ConfigProblem,
  type ErrorCode,
  type LockLossReason,
} from './errors.js';
export {
  Lock,
  LOCK_TOKEN_LENGTH,
  Locks,
  type AcquireOptions,
  type LockAuditEvent,
  type LockContext,
  type LockExtension,
  type LockRefusal,
  type LocksOptions,
  type WaitOptions,
  type WithLockOptions,
} from './locks/locks.js';
export { createGatehouse, type Gatehouse, type GatehouseOptions } from './gatehouse.js';
export {
  parseRateLimitPolicy,
  RATE_LIMIT_POLICY_EXPECTED,
  type RateLimitPolicy,
} from './rate-limit/policy.js';
export {
  rateLimitHeaders,
  RateLimits,
  type RateLimitDecision,
  type RateLimitsOptions,
} from './rate-limit/rate-limits.js';
export { decodeSecretKey, KeyRing, SECRET_KEY_MIN_BYTES } from './crypto/keyring.js';
export {
  MAX_TRUSTED_PROXY_COUNT,
  parseTrustedProxies,
  TrustedProxies,
  type TrustedProxiesParse,
  type TrustProxyOption,
} from './http/client-ip.js';
export { ipRateLimitGroup } from './http/ip-address.js';
export {
  CSRF_TOKEN_LENGTH,
  Csrf,
  type CsrfAuditEvent,
  type CsrfOptions,
  type CsrfRefusal,
  type CsrfRequest,
  type CsrfResult,
} from './csrf/csrf.js';
export {
  Idempotency,
  MAX_IDEMPOTENT_BODY_BYTES,
  type IdempotencyOptions,
  type IdempotencyOutcome,
  type StoredResponse,
} from './idempotency/idempotency.js';
export {
  NONCE_LENGTH,
  Nonces,
  type NonceAuditEvent,
  type NonceRefusal,
  type NonceResult,
  type NoncesOptions,
} from './nonces/nonces.js';
export { Revocations, type RevocationAuditEvent, type RevocationsOptions } from './revocation/revocation.js';
export type { DurableSession } from './sessions/repository.js';
export { SESSION_TABLE_SQL, SqlSessionRepository, type SqlQueryable } from './sessions/sql-repository.js';
export {
  HANDLE_LENGTH,
  Sessions,
  SessionToken,
  TOKEN_LENGTH,
  type JsonValue,
  type Session,
  type SessionAuditEvent,
  type SessionAuditType,
  type SessionEndedEvent,
  type SessionInput,
  type SessionRepository,
  type SessionsOptions,
  type SessionValidationResult,
} from './sessions/sessions.js';
export { aclRule } from './store/acl.js';
export { createStore, type CreateStoreOptions } from './store/index.js';
export { isValidKeyPrefix, KEY_PREFIX_EXPECTED, KeySpace } from './store/keys.js';
export { MemoryStore, type MemoryStoreOptions } from './store/memory/store.js';
export {
  isLoopbackHost,
  parseRedisUrl,
  type ClusterOptions,
  type HostPort,
  type RedisConnectionOptions,
  type RedisTlsOptions,
  type SentinelOptions,
  type StandaloneOptions,
} from './store/options.js';
export { MAX_REDIS_TIMEOUT_MS } from './store/redis/connection.js';
export { RedisStore, type RedisStoreOptions } from './store/redis/store.js';
export type {
  ProbeResult,
  ServerInfo,
  SessionEndReason,
  Store,
  StoreHealth,
  StoreMode,
  StoreNodeHealth,
} from './store/store.js';
export { DURATION_EXPECTED, parseDurationMs, toMs, type Duration } from './util/duration.js';
export { createConsoleLogger, type Logger } from './util/logger.js';
