/**
 * The error catalogue: every error gatehouse throws has a stable code from this table, the HTTP
 * error code an adapter answers with, and a default message. Expected outcomes (an unknown session,
 * a denied rate-limit check, a held lock) are return values, never errors.
 *
 * Codes follow `GH_ERR_<AREA>_<PROBLEM>` and never change meaning once published.
 */
/**
 * The HTTP error codes of the envelope (`{"success": false, "error": {"code", "message"}}`) and
 * their statuses: the one status table. The adapters answer with these codes
 * (packages/gatehouse/src/http/envelope.ts), the catalogue below names one for each error, and
 * the service's documented error table (docs/http-api.md) is checked against it.
 */
export const HTTP_ERROR_STATUS = {
  VALIDATION_ERROR: 400,
  UNAUTHENTICATED: 401,
  CSRF_INVALID: 403,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  LOCKED: 409,
  NONCE_INVALID: 409,
  PAYLOAD_TOO_LARGE: 413,
  RATE_LIMITED: 429,
  INTERNAL_ERROR: 500,
  SERVICE_UNAVAILABLE: 503,
} as const;

export type HttpErrorCode = keyof typeof HTTP_ERROR_STATUS;

export const ERROR_CATALOGUE = {
  GH_ERR_CONFIG_INVALID: {
    httpCode: 'INTERNAL_ERROR',
    message: 'The configuration is invalid.',
  },
  GH_ERR_STORE_UNAVAILABLE: {
    httpCode: 'SERVICE_UNAVAILABLE',
    message: 'The store (Redis) is not answering.',
  },
  GH_ERR_STORE_NOT_PERMITTED: {
    httpCode: 'SERVICE_UNAVAILABLE',
    message: 'The Redis user is not permitted to run a command gatehouse needs.',
  },
  GH_ERR_STORE_COMMAND_FAILED: {
    httpCode: 'INTERNAL_ERROR',
    message: 'Redis refused a command.',
  },
  GH_ERR_STORE_KEY_INVALID: {
    httpCode: 'INTERNAL_ERROR',
    message: 'A key part is not valid.',
  },
  GH_ERR_LOCK_HELD: {
    httpCode: 'LOCKED',
    message: 'The resource is locked by another holder.',
  },
  GH_ERR_LOCK_LOST: {
    httpCode: 'CONFLICT',
    message: 'The lock was lost before the work finished.',
  },
} as const satisfies Record<string, { readonly httpCode: HttpErrorCode; readonly message: string }>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

/**
 * Base class of every error gatehouse throws: `code` is stable; `httpCode` (and its `httpStatus`)
 * is what the adapters answer with (see refusalForError in packages/gatehouse/src/http/envelope.ts).
 */
export class GatehouseError extends Error {
  readonly code: ErrorCode;
  readonly httpCode: HttpErrorCode;
  readonly httpStatus: number;

  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown }) {
    super(message ?? ERROR_CATALOGUE[code].message, options);
    this.name = new.target.name;
    this.code = code;
    this.httpCode = ERROR_CATALOGUE[code].httpCode;
    this.httpStatus = HTTP_ERROR_STATUS[this.httpCode];
  }
}

/** One rejected configuration value: the variable, a printable (possibly redacted) value, and what was expected. */
export interface ConfigProblem {
  readonly variable: string;
  readonly value: string;
  readonly expected: string;
}

/**
 * Start-up configuration was refused. The message lists every problem found, one per line, so an
 * operator fixes them all in one go; secrets are never echoed.
 */
export class ConfigError extends GatehouseError {
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[]) {
    const lines = problems.map((p) => `  ${p.variable}=${p.value}: ${p.expected}`);
    super('GH_ERR_CONFIG_INVALID', `Invalid configuration:\n${lines.join('\n')}`);
    this.problems = Object.freeze([...problems]);
  }
}

/**
 * A route's gatehouse requirements are wrong where the route is defined (a rate-limit policy
 * that was never configured, an unknown requirement, a bad duration): thrown at start-up, so a
 * mistake never becomes a 500 on every request or, worse, an unguarded route.
 */
export class RouteDefinitionError extends GatehouseError {
  /** What was being defined: `route GET /api/v1/me`, `protect()`, `lock()`. */
  readonly route: string;

  constructor(route: string, problem: string) {
    super('GH_ERR_CONFIG_INVALID', `${route}: ${problem}`);
    this.route = route;
  }
}

/**
 * Redis is not answering: not connected, reconnecting, timed out, loading, or a cluster/sentinel
 * in the middle of a failover. A timed-out write may still take effect later (see REDIS-NOTES):
 * callers must not take this error as proof that nothing happened.
 */
export class StoreUnavailableError extends GatehouseError {
  constructor(message?: string, options?: { cause?: unknown }) {
    super('GH_ERR_STORE_UNAVAILABLE', message, options);
  }
}

/**
 * The Redis ACL user may not run a command or touch a key gatehouse needs. This is a deployment
 * mistake, not an outage: it will not fix itself by retrying.
 */
export class StorePermissionError extends GatehouseError {
  constructor(message?: string, options?: { cause?: unknown }) {
    super('GH_ERR_STORE_NOT_PERMITTED', message, options);
  }
}

/** Redis answered with an error that is neither an outage nor a permission problem (a bug or a misconfigured server). */
export class StoreCommandError extends GatehouseError {
  constructor(message?: string, options?: { cause?: unknown }) {
    super('GH_ERR_STORE_COMMAND_FAILED', message, options);
  }
}

/** A key part given to the key space is empty, too long, or contains characters that would break hash tags. */
export class KeyInvalidError extends GatehouseError {
  constructor(message: string) {
    super('GH_ERR_STORE_KEY_INVALID', message);
  }
}

/**
 * `withLock` could not take the lock within its wait: someone else holds it. (`tryAcquire` and
 * `acquire` return this outcome as a value; `withLock` has no value to return instead.)
 */
export class LockHeldError extends GatehouseError {
  /** Until the current holder's lock expires, unless renewed: a `Retry-After` for a 409. */
  readonly retryAfterMs: number;
  /** The holder's label, when it gave one. */
  readonly holder: string | null;

  constructor(resourceDescription: string, retryAfterMs: number, holder: string | null) {
    super('GH_ERR_LOCK_HELD', `${resourceDescription} is locked by another holder`);
    this.retryAfterMs = retryAfterMs;
    this.holder = holder;
  }
}

/** Why a held lock was lost: renewal refused, the store unreachable past the TTL, or the hold limit reached. */
export type LockLossReason = 'not-held' | 'store-unavailable' | 'hold-limit';

/**
 * A lock held by `withLock` was lost while its function ran (the function's AbortSignal fired
 * with this error as its reason). Whatever the function did after that was not exclusive: the
 * fencing token is what keeps a stale holder's writes out.
 */
export class LockLostError extends GatehouseError {
  readonly reason: LockLossReason;

  constructor(reason: LockLossReason, message: string) {
    super('GH_ERR_LOCK_LOST', message);
    this.reason = reason;
  }
}
