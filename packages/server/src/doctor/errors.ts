/** The errors of the doctor's audit connections, and how an error reads in a report. */

/** The target could not be reached or refused the credentials: nothing could be audited. */
export class DoctorConnectionError extends Error {
  override readonly name = 'DoctorConnectionError';
}

/** The audit user may not run `command` (NOPERM), or the server does not know it (renamed, disabled, too old). */
export class CommandRefusedError extends Error {
  override readonly name = 'CommandRefusedError';

  constructor(
    readonly command: string,
    readonly kind: 'not-permitted' | 'unknown',
    reply: string,
  ) {
    super(`${command}: ${reply}`);
  }
}

/** A command failed for another reason (timeout, closed socket, an error reply). */
export class CommandFailedError extends Error {
  override readonly name = 'CommandFailedError';
}

/** The message of an error, or the thing thrown as text. */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
