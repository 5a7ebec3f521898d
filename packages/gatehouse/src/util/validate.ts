/**
 * Throws a TypeError naming `name` unless `value` is a string of 1 to `maxLength` characters
 * without control characters (a programming error at the call site, not a user outcome).
 */
export function requireText(name: string, value: unknown, maxLength: number): asserts value is string {
  if (typeof value !== 'string' || value === '' || value.length > maxLength || /\p{Cc}/u.test(value)) {
    throw new TypeError(`${name} must be 1 to ${String(maxLength)} printable characters`);
  }
}
