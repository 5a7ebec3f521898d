/** Small helpers for the self-describing tokens (nonces, CSRF tokens). */
import { createHash } from 'node:crypto';

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
