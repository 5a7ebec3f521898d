/**
 * The HTTP error envelope and codes of the reference contract (../shared/API.md):
 * `{"success": false, "error": {"code", "message"}}`. Adapters answer with these; the decisions
 * that lead to them are made in HttpGuard.
 */
import { GatehouseError, StorePermissionError, StoreUnavailableError } from '../errors.js';

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

export interface ErrorEnvelope {
  readonly success: false;
  readonly error: { readonly code: HttpErrorCode; readonly message: string };
}

/** A refusal to send as is: status, headers (e.g. `Retry-After`) and the envelope. */
export interface HttpRefusal {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: ErrorEnvelope;
}

export function refusal(
  code: HttpErrorCode,
  message: string,
  headers: Readonly<Record<string, string>> = {},
): HttpRefusal {
  return { status: HTTP_ERROR_STATUS[code], headers, body: { success: false, error: { code, message } } };
}

/**
 * The refusal for an error thrown while guarding a request: Redis not answering (or not
 * permitting) is 503 SERVICE_UNAVAILABLE with `Retry-After: 1`; anything else is a 500 whose
 * message says nothing about the cause (it goes to the log, not to the client).
 */
export function refusalForError(error: unknown): HttpRefusal {
  if (error instanceof StoreUnavailableError || error instanceof StorePermissionError) {
    return refusal(
      'SERVICE_UNAVAILABLE',
      'A service gatehouse depends on is not answering; try again shortly.',
      {
        'Retry-After': '1',
      },
    );
  }
  if (error instanceof GatehouseError && error.httpStatus === 409 && error.code === 'GH_ERR_LOCK_HELD') {
    return refusal('LOCKED', 'The resource is locked by another request.');
  }
  return refusal('INTERNAL_ERROR', 'Internal error.');
}
