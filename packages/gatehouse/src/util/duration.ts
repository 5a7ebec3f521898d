/**
 * Durations as operators write them: an integer followed by a unit, `500ms`, `30s`, `30m`,
 * `12h`, `5d`. No decimals, no spaces, no compound forms: one obvious spelling each.
 */
const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

const DURATION_PATTERN = /^(\d{1,15})(ms|s|m|h|d)$/;

/** Text of what a duration looks like, for error messages. */
export const DURATION_EXPECTED = 'an integer followed by ms, s, m, h or d (e.g. 500ms, 30s, 30m, 12h, 5d)';

/** Milliseconds, or `undefined` when the text is not a duration. */
export function parseDurationMs(text: string): number | undefined {
  const match = DURATION_PATTERN.exec(text);
  if (!match) return undefined;
  const amount = Number(match[1]);
  const unit = match[2] as keyof typeof UNIT_MS;
  const ms = amount * UNIT_MS[unit];
  return Number.isSafeInteger(ms) ? ms : undefined;
}

/** A duration given either as milliseconds or as text like `30m`. */
export type Duration = number | string;

/**
 * Resolves a library option that may be a number of milliseconds or a duration string; throws a
 * `TypeError` naming the option when it is neither (a programming error, caught at start-up).
 */
export function toMs(option: string, value: Duration): number {
  const ms = typeof value === 'number' ? value : parseDurationMs(value);
  if (ms === undefined || !Number.isSafeInteger(ms) || ms < 0) {
    throw new TypeError(`${option} must be a non-negative integer of milliseconds or ${DURATION_EXPECTED}`);
  }
  return ms;
}
