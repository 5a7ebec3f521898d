/**
 * Development secret keys: without SECRET_KEYS outside production, the service generates one
 * key into `DATA_DIR/secret-keys` (mode 0600) on first start and reads it afterwards, so sessions
 * survive a restart. Production refuses to start without SECRET_KEYS (see loadConfig). Commands
 * run beside the service (`gatehouse sessions`, `gatehouse audit`) read the same file with
 * {@link readDevKeys}, which never creates one.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { decodeSecretKey, SECRET_KEY_MIN_BYTES } from 'gatehouse';

export function loadOrCreateDevKeys(dataDir: string): { keys: Buffer[]; created: boolean } {
  const file = join(dataDir, 'secret-keys');
  let text: string | undefined;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  if (text !== undefined) {
    const keys = parseDevKeys(text);
    if (keys === undefined)
      throw new Error(`${file} does not hold valid keys; delete it to generate new ones`);
    return { keys, created: false };
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const key = randomBytes(32);
  // `wx`: two instances starting at once must not overwrite each other's key.
  try {
    writeFileSync(file, `${key.toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return loadOrCreateDevKeys(dataDir);
    throw error;
  }
  return { keys: [key], created: true };
}

/**
 * The service's development keys, read as {@link loadOrCreateDevKeys} reads them but never
 * created (a key made here would match nothing the service made); or why there are none, in one
 * sentence that names the file and never a key.
 */
export function readDevKeys(dataDir: string): { keys: Buffer[] } | { problem: string } {
  const file = join(dataDir, 'secret-keys');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      return {
        problem:
          `no SECRET_KEYS and no development key in DATA_DIR (${file}): set SECRET_KEYS to the service's keys, ` +
          'or DATA_DIR to the directory of the service that generated one',
      };
    }
    return { problem: `cannot read the development key ${file} (${code ?? 'unreadable'})` };
  }
  const keys = parseDevKeys(text);
  return keys === undefined ? { problem: `${file} does not hold valid keys` } : { keys };
}

/** The keys of the file's text (one per line or comma-separated), or undefined when one is not a key. */
function parseDevKeys(text: string): Buffer[] | undefined {
  const keys = text
    .split(/[\s,]+/)
    .filter((item) => item !== '')
    .map((item) => decodeSecretKey(item));
  if (keys.length === 0) return undefined;
  const valid: Buffer[] = [];
  for (const key of keys) {
    if (key === undefined || key.length < SECRET_KEY_MIN_BYTES) return undefined;
    valid.push(key);
  }
  return valid;
}
