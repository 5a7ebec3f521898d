/**
 * Reading environment variables for `loadConfig` (packages/server/src/config.ts): the `Reader`
 * turns each variable into a typed value or records a problem naming the variable, the value
 * (redacted for secrets, URLs without their credentials) and what was expected; and the parsers
 * of the kinds of value the variables hold.
 *
 * An empty variable counts as unset (deployment tools often export empty strings).
 */
import { readFileSync } from 'node:fs';

import { DURATION_EXPECTED, parseDurationMs, type ConfigProblem } from 'gatehouse';

export type Env = Readonly<Record<string, string | undefined>>;

const SECRET_VARIABLES = new Set(['REDIS_PASSWORD', 'REDIS_SENTINEL_PASSWORD', 'SECRET_KEYS']);
const URL_VARIABLES = new Set(['REDIS_URL', 'DATABASE_URL', 'GOTENBERG_URL']);
/** Variables whose values are personal data (emails): named in a problem, never shown. */
const PERSONAL_VARIABLES = new Set(['ADMIN_EMAILS']);

/**
 * A URL with everything between `://` and the last `@` replaced, by text and not by parsing: a
 * password with an unencoded `/`, `#` or `?` would otherwise spill into the path a parser sees.
 */
export function redactUrl(text: string): string {
  const start = text.indexOf('://');
  const at = text.lastIndexOf('@');
  if (start === -1 || at < start) return text;
  return `${text.slice(0, start + 3)}***${text.slice(at)}`;
}

/** A value as it may appear in an error message: quoted, shortened, and never a secret. */
function printable(variable: string, value: string): string {
  if (SECRET_VARIABLES.has(variable)) return `(redacted, ${String(value.length)} characters)`;
  if (PERSONAL_VARIABLES.has(variable)) return '(not shown: personal data)';
  const shown = URL_VARIABLES.has(variable) ? redactUrl(value) : value;
  const short = shown.length > 80 ? `${shown.slice(0, 77)}...` : shown;
  return JSON.stringify(short);
}

export class Reader {
  readonly problems: ConfigProblem[] = [];

  constructor(private readonly env: Env) {}

  raw(variable: string): string | undefined {
    const value = this.env[variable];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  }

  problem(variable: string, value: string | undefined, expected: string): void {
    this.problems.push({
      variable,
      value: value === undefined ? '(unset)' : printable(variable, value),
      expected,
    });
  }

  string(variable: string, fallback: string): string {
    return this.raw(variable) ?? fallback;
  }

  parsed<T>(variable: string, fallback: T, parse: (text: string) => T | undefined, expected: string): T {
    const text = this.raw(variable);
    if (text === undefined) return fallback;
    const value = parse(text);
    if (value === undefined) {
      this.problem(variable, text, `expected ${expected}`);
      return fallback;
    }
    return value;
  }

  boolean(variable: string, fallback: boolean): boolean {
    return this.parsed(variable, fallback, parseBoolean, 'true or false');
  }

  integer(variable: string, fallback: number, min: number, max: number): number {
    return this.parsed(
      variable,
      fallback,
      (text) => {
        if (!/^\d{1,10}$/.test(text)) return undefined;
        const n = Number(text);
        return n >= min && n <= max ? n : undefined;
      },
      `an integer from ${min} to ${max}`,
    );
  }

  duration(variable: string, fallback: string, minMs: number, maxMs = Number.MAX_SAFE_INTEGER): number {
    const fallbackMs = parseDurationMs(fallback) ?? 0;
    const range =
      maxMs === Number.MAX_SAFE_INTEGER
        ? `at least ${String(minMs)} ms`
        : `from ${String(minMs)} ms to ${String(maxMs)} ms`;
    return this.parsed(
      variable,
      fallbackMs,
      (text) => {
        const ms = parseDurationMs(text);
        return ms !== undefined && ms >= minMs && ms <= maxMs ? ms : undefined;
      },
      `${DURATION_EXPECTED}, ${range}`,
    );
  }

  list(variable: string): string[] {
    const text = this.raw(variable);
    if (text === undefined) return [];
    return text
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item !== '');
  }

  file(variable: string): string | undefined {
    const path = this.raw(variable);
    if (path === undefined) return undefined;
    try {
      return readFileSync(path, 'utf8');
    } catch (error) {
      const reason = error instanceof Error && 'code' in error ? String(error.code) : 'unreadable';
      this.problem(variable, path, `expected a readable PEM file (${reason})`);
      return undefined;
    }
  }
}

export function parseBoolean(text: string): boolean | undefined {
  const lower = text.toLowerCase();
  if (lower === 'true' || lower === '1') return true;
  if (lower === 'false' || lower === '0') return false;
  return undefined;
}

export function parseOrigin(text: string): string | undefined {
  try {
    const url = new URL(text);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
    if (url.origin !== text.replace(/\/$/, '')) return undefined;
    return url.origin;
  } catch {
    return undefined;
  }
}

export function parseHttpUrl(text: string): string | undefined {
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:'
      ? url.toString().replace(/\/$/, '')
      : undefined;
  } catch {
    return undefined;
  }
}
