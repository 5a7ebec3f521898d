/**
 * The HTTP error envelope: `{"success": false, "error": {"code", "message"}}`, with the status of
 * its code from the one status table (HTTP_ERROR_STATUS in packages/gatehouse/src/errors.ts).
 * Adapters answer with these; the decisions that lead to them are made in HttpGuard.
 */
import {
  GatehouseError,
  HTTP_ERROR_STATUS,
  LockHeldError,
  StorePermissionError,
  StoreUnavailableError,
  type HttpErrorCode,
} from '../errors.js';

export { HTTP_ERROR_STATUS, type HttpErrorCode } from '../errors.js';

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
 * The refusal for an error thrown while guarding or handling a request: Redis not answering (or
 * not permitting) is 503 SERVICE_UNAVAILABLE with `Retry-After: 1`; a held lock (withLock) is 409
 * LOCKED with `Retry-After`; another gatehouse error answers with its catalogue code (a lost
 * lock: 409 CONFLICT); a body the framework could not parse is 400 VALIDATION_ERROR, or 413
 * PAYLOAD_TOO_LARGE; anything else is a 500 whose message says nothing about the cause (that
 * goes to the log, never to the client).
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
  if (error instanceof LockHeldError) {
    return refusal('LOCKED', 'Another request is working on this; try again later.', {
      'Retry-After': String(Math.max(1, Math.ceil(error.retryAfterMs / 1000))),
    });
  }
  // Any other gatehouse error answers with its catalogue code; a 500 says nothing more.
  if (error instanceof GatehouseError && error.httpCode !== 'INTERNAL_ERROR') {
    return refusal(error.httpCode, CLIENT_MESSAGES[error.httpCode] ?? 'The request could not be done.');
  }
  const status = frameworkStatus(error);
  if (status === 413) return refusal('PAYLOAD_TOO_LARGE', 'The request body is too large.');
  if (status === 404) return refusal('NOT_FOUND', 'Not found.');
  if (status !== undefined) return refusal('VALIDATION_ERROR', 'The request is malformed.');
  return refusal('INTERNAL_ERROR', 'Internal error.');
}

/** What a client is told for a gatehouse error other than the ones above (never the cause). */
const CLIENT_MESSAGES: Partial<Record<HttpErrorCode, string>> = {
  CONFLICT: 'The work could not be finished; try again.',
};

/** The status a framework put on a client error (Fastify's `statusCode`, body-parser's `status`). */
function frameworkStatus(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { statusCode, status } = error as { statusCode?: unknown; status?: unknown };
  const value = typeof statusCode === 'number' ? statusCode : typeof status === 'number' ? status : undefined;
  return value !== undefined && value >= 400 && value < 500 ? value : undefined;
}
