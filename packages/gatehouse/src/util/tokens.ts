/** Small helpers for the self-describing tokens (nonces, CSRF tokens). */
import { createHash, randomFillSync } from 'node:crypto';

const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** Bytes of a base64url string of exactly `length` characters, or null. */
export function decodeFixed(text: unknown, length: number): Buffer | null {
  if (typeof text !== 'string' || text.length !== length || !BASE64URL.test(text)) return null;
  return Buffer.from(text, 'base64url');
}

/** The id under which a token's record is stored: 128 bits of its SHA-256, never the token. */
export function recordId(token: string): string {
  return createHash('sha256').update(token).digest('base64url').slice(0, 22);
}

/** Big-endian 48-bit unsigned integer (milliseconds since the epoch fit until year 10889). */
export function writeUint48(buffer: Buffer, value: number, offset: number): void {
  buffer.writeUIntBE(value, offset, 6);
}

export function readUint48(buffer: Buffer, offset: number): number {
  return buffer.readUIntBE(offset, 6);
}

/**
 * Random bytes from a pool refilled 4 KiB at a time from the CSPRNG: one `randomBytes(16)` call
 * costs several microseconds of system time, more than the rest of a lock acquire. Bytes are
 * handed out once and never reused (as Node's own `randomUUID` cache does).
 */
const POOL_BYTES = 4096;
const pool = Buffer.alloc(POOL_BYTES);
let poolOffset = POOL_BYTES;

export function randomToken(bytes: number): Buffer {
  if (!Number.isSafeInteger(bytes) || bytes < 1 || bytes > POOL_BYTES) {
    throw new RangeError(`randomToken takes 1 to ${String(POOL_BYTES)} bytes`);
  }
  if (poolOffset + bytes > POOL_BYTES) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const token = Buffer.from(pool.subarray(poolOffset, poolOffset + bytes));
  // Spent bytes are wiped so the pool never holds a token that was handed out.
  pool.fill(0, poolOffset, poolOffset + bytes);
  poolOffset += bytes;
  return token;
}
