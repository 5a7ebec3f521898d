/**
 * Development secret keys: without SECRET_KEYS outside production, the service generates one
 * key into `DATA_DIR/secret-keys` (mode 0600) on first start and reads it afterwards, so sessions
 * survive a restart. Production refuses to start without SECRET_KEYS (see loadConfig).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { decodeSecretKey } from 'gatehouse';

export function loadOrCreateDevKeys(dataDir: string): { keys: Buffer[]; created: boolean } {
  const file = join(dataDir, 'secret-keys');
  let text: string | undefined;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  if (text !== undefined) {
    const keys = text
      .split(/[\s,]+/)
      .filter((line) => line !== '')
      .map((line) => decodeSecretKey(line));
    if (keys.length === 0 || keys.some((key) => key === undefined || key.length < 32)) {
      throw new Error(`${file} does not hold valid keys; delete it to generate new ones`);
    }
    return { keys: keys as Buffer[], created: false };
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
