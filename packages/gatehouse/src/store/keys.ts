import { KeyInvalidError } from '../errors.js';

/**
 * The key space: every Redis key and pub/sub channel gatehouse uses is built here, as
 * `<prefix>:<area>.v<version>:<parts...>`, so one ACL rule (`~gh:* &gh:*`) confines the service
 * and a format change bumps the area's version instead of misreading old keys.
 *
 * Keys that one script touches together share a hash tag (`{...}`) so the script runs on Redis
 * Cluster; only this module writes braces, and parts may not contain any.
 */

/** Areas and their current key format version. An area's version changes when its layout does. */
export const KEY_AREAS = {
  health: 1,
  sess: 1,
  nonce: 1,
  csrf: 1,
  revoke: 1,
  idem: 1,
  rl: 1,
  lock: 1,
} as const;

export type KeyArea = keyof typeof KEY_AREAS;

export const KEY_PREFIX_EXPECTED = '1 to 32 characters from A-Z a-z 0-9 _ - . (no colon, no braces)';

export function isValidKeyPrefix(prefix: string): boolean {
  return /^[A-Za-z0-9_.-]{1,32}$/.test(prefix);
}

const MAX_PART_LENGTH = 256;

function checkPart(part: string): string {
  if (part.length === 0 || part.length > MAX_PART_LENGTH) {
    throw new KeyInvalidError(`a key part must be 1 to ${MAX_PART_LENGTH} characters long`);
  }
  // Braces would change which slot a key hashes to; whitespace and control characters have no
  // business in a key and make log lines ambiguous.
  if (/[{}\s\p{Cc}]/u.test(part)) {
    throw new KeyInvalidError('a key part may not contain braces, whitespace or control characters');
  }
  return part;
}

export class KeySpace {
  readonly prefix: string;

  constructor(prefix = 'gh') {
    if (!isValidKeyPrefix(prefix)) throw new KeyInvalidError(`key prefix must be ${KEY_PREFIX_EXPECTED}`);
    this.prefix = prefix;
  }

  private area(area: KeyArea): string {
    return `${this.prefix}:${area}.v${KEY_AREAS[area]}`;
  }

  /** `<prefix>:<area>.vN:<parts...>`: a key no script shares with another key. */
  key(area: KeyArea, ...parts: string[]): string {
    return [this.area(area), ...parts.map(checkPart)].join(':');
  }

  /**
   * `<prefix>:<area>.vN:{<tag>}:<parts...>`: keys built with the same area and tag land in the
   * same Cluster slot, so one script may touch them all.
   */
  tagged(area: KeyArea, tag: string, ...parts: string[]): string {
    return [this.area(area), `{${checkPart(tag)}}`, ...parts.map(checkPart)].join(':');
  }

  /** A pub/sub channel under the same prefix as the keys (`&<prefix>:*` in ACL terms). */
  channel(area: KeyArea, ...parts: string[]): string {
    return this.key(area, ...parts);
  }

  /** The glob that matches every key and channel of this key space (`<prefix>:*`). */
  get pattern(): string {
    return `${this.prefix}:*`;
  }
}
