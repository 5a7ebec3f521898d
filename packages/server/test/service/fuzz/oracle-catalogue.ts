/**
 * The fuzz oracle's own copy of the error catalogue of the HTTP contract (docs/http-api.md):
 * every error answer carries one of these codes, with this status. It is written out here on
 * purpose instead of being read from the library's table, so that the fuzz test judges answers
 * by the contract, and a test that compares this copy with the library's table and the docs
 * shows any drift between the three.
 */
export const ERROR_CATALOGUE: Readonly<Record<string, number>> = {
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
  SERVICE_UNAVAILABLE: 503,
};
