import { DURATION_EXPECTED, parseDurationMs } from '../util/duration.js';

/**
 * A rate-limit policy: `limit` requests per `periodMs`, plus `burst` extra requests that may
 * come at once. Written as `5/1m+2` (the `+burst` part may be left out).
 */
export interface RateLimitPolicy {
  readonly limit: number;
  readonly periodMs: number;
  readonly burst: number;
}

export const RATE_LIMIT_POLICY_EXPECTED = `limit/period[+burst], e.g. 5/1m+2 or 100/1m; limit 1 or more, period ${DURATION_EXPECTED}`;

const POLICY_PATTERN = /^(\d{1,9})\/([0-9a-z]+)(?:\+(\d{1,9}))?$/;

/** The policy, or `undefined` when the text is not one. */
export function parseRateLimitPolicy(text: string): RateLimitPolicy | undefined {
  const match = POLICY_PATTERN.exec(text);
  if (!match) return undefined;
  const limit = Number(match[1]);
  const periodMs = parseDurationMs(match[2] ?? '');
  const burst = Number(match[3] ?? '0');
  if (limit < 1 || periodMs === undefined || periodMs < 1) return undefined;
  return { limit, periodMs, burst };
}
