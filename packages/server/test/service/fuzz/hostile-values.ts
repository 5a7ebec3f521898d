/**
 * Hostile values: odd and very long strings, bytes that are not UTF-8, garbage and near-valid
 * bearer tokens, and ids for a route's path parameters.
 */
import type { Fixtures, Principal } from './fixtures.js';
import type { HeaderValue } from './raw-http.js';
import type { Rng } from './rng.js';

const HOSTILE_TEXT: readonly string[] = [
  '',
  ' ',
  'null',
  'undefined',
  'true',
  '0',
  '-1',
  'NaN',
  '1e309',
  '9007199254740993',
  "'; DROP TABLE users; --",
  "' OR '1'='1' --",
  '<script>alert(1)</script>',
  '${7*7}{{7*7}}#{7*7}',
  '../../../../etc/passwd',
  '..\\..\\windows\\win.ini',
  '%00%ff%fe',
  'a\r\nX-Injected: yes',
  '\u202eevil\u202c',
  '\u200b\ufeff\u2028\u2029',
  'Ā𝕏😀👩‍⚕️\uffff',
  'e\u0301\u0301\u0301',
  'NUL\u0000inside',
  'half a pair \ud800 here',
  'low half \udc00 alone',
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
];

export function hostileString(rng: Rng): string {
  switch (rng.int(5)) {
    case 0:
      return 'A'.repeat(rng.pick([257, 1025, 10_001, 65_537, 300_000]));
    case 1:
      return rng.text(rng.between(1, 300), 'aé😀\u0000\ud800\u202e<>"\'\\/%{}[]$ \t\n');
    default:
      return rng.pick(HOSTILE_TEXT);
  }
}

/** Bytes that are not UTF-8: lone continuation bytes, overlong forms, encoded surrogates, 0xFF. */
const INVALID_UTF8: readonly number[][] = [
  [0xff],
  [0xfe, 0xff],
  [0x80],
  [0xc3, 0x28],
  [0xc0, 0xaf],
  [0xe0, 0x80, 0xaf],
  [0xed, 0xa0, 0x80],
  [0xf8, 0x88, 0x80, 0x80, 0x80],
  [0xf4, 0x90, 0x80, 0x80],
  [0xe2, 0x82],
];

export function invalidUtf8(rng: Rng): Buffer {
  const parts: Buffer[] = [];
  for (let i = rng.between(1, 3); i > 0; i--) {
    parts.push(Buffer.from(rng.text(rng.between(0, 6))), Buffer.from(rng.pick(INVALID_UTF8)));
  }
  return Buffer.concat(parts);
}

/** A header value with raw bytes 0x80-0xFF (allowed on the wire as obs-text, never valid UTF-8). */
export function latin1Garbage(rng: Rng, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) out[i] = rng.chance(0.5) ? 0x80 + rng.int(128) : 0x21 + rng.int(94);
  return out;
}

export function base64url(rng: Rng, length: number): string {
  return rng.text(length, 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_');
}

function b64json(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/** A token that is almost the real one: a character changed, cut, grown, or its case flipped. */
export function nearly(rng: Rng, token: string): string {
  const at = rng.int(token.length);
  switch (rng.int(5)) {
    case 0:
      return token.slice(0, at) + (token[at] === 'A' ? 'B' : 'A') + token.slice(at + 1);
    case 1:
      return token.slice(0, Math.max(1, at));
    case 2:
      return token + base64url(rng, rng.between(1, 8));
    case 3:
      return token.toUpperCase();
    default:
      return `${token}.${token}`;
  }
}

/** Bearer values: garbage, JWT-looking, session-token-looking, near-valid, revoked. */
export function hostileBearer(rng: Rng, fx: Fixtures, valid: Principal): HeaderValue {
  const revoked = rng.pick(fx.revoked);
  switch (rng.int(14)) {
    case 0:
      return `Bearer ${base64url(rng, 43)}`;
    case 1:
      return `Bearer ${base64url(rng, rng.between(20, 60))}.${base64url(rng, rng.between(20, 200))}.${base64url(rng, 86)}`;
    case 2:
      return `Bearer ${b64json({ alg: 'none', typ: 'JWT' })}.${b64json({ sub: valid.user.id, sid: valid.handle, jti: 'x', exp: 9_999_999_999 })}.`;
    case 3:
      return `Bearer ${b64json({ alg: 'HS256', typ: 'JWT', kid: 'A'.repeat(rng.pick([10, 5000])) })}.${b64json({ sub: valid.user.id, sid: valid.handle, exp: 1 })}.${base64url(rng, 43)}`;
    case 4:
      return `Bearer ${b64json({ alg: 'EdDSA', kid: '../../etc/passwd', crit: ['x'], jku: 'http://evil.example/jwks' })}.${b64json({ sub: ['a'], sid: { $gt: '' }, exp: 'never' })}.${base64url(rng, 86)}`;
    case 5:
      return `Bearer ${nearly(rng, valid.access)}`;
    case 6:
      return `Bearer ${nearly(rng, valid.token)}`;
    case 7:
      return `Bearer ${rng.chance(0.5) ? revoked.token : revoked.access}`;
    case 8:
      return rng.pick([
        'Bearer',
        'Bearer ',
        'Bearer a b',
        'Basic dXNlcjpwYXNzd29yZA==',
        'Digest username="x"',
        `bearer ${valid.token}`,
        `Bearer    ${valid.access}   `,
        `Bearer ${valid.token} ${valid.access}`,
        valid.token,
      ]);
    case 9:
      return `Bearer ${'A'.repeat(rng.pick([1000, 8000]))}`;
    case 10:
      return Buffer.concat([Buffer.from('Bearer '), latin1Garbage(rng, rng.between(1, 80))]);
    case 11:
      return Buffer.concat([Buffer.from('Bearer '), Buffer.from(valid.token), invalidUtf8(rng)]);
    case 12:
      return `Bearer ${
        hostileString(rng)
          .replace(/[\r\n]/g, '')
          .replaceAll('\u0000', '')
          .slice(0, 4000) || 'x'
      }`;
    default:
      return `Bearer ${valid.access.split('.').slice(0, 2).join('.')}.${base64url(rng, 86)}`;
  }
}

export function hostileIds(rng: Rng): string {
  return rng.pick([
    '00000000-0000-0000-0000-000000000000',
    'ffffffff-ffff-ffff-ffff-ffffffffffff',
    randomishUuid(rng),
    randomishUuid(rng).toUpperCase(),
    `${randomishUuid(rng)}x`,
    `${randomishUuid(rng)}%00`,
    '0',
    '-1',
    'null',
    'undefined',
    '%00',
    '%ff%fe',
    '%zz',
    '%',
    '%2e%2e%2f%2e%2e%2fetc%2fpasswd',
    '..',
    '.',
    "'%20OR%20'1'%3D'1",
    '%3Cscript%3E',
    '__proto__',
    'constructor',
    'prototype',
    '%F0%9F%92%A9',
    '%E2%80%AE',
    '%C0%AF',
    '%ED%A0%80',
    '1e309',
    ';',
    'a'.repeat(rng.pick([99, 100, 101, 129, 300, 5000])),
    percentEncoded(rng.text(20, 'aé😀\u202e<>"\'\\ ')),
  ]);
}

function percentEncoded(text: string): string {
  return [...Buffer.from(text)].map((byte) => `%${byte.toString(16).padStart(2, '0')}`).join('');
}

export function randomishUuid(rng: Rng): string {
  const hex = rng.text(32, '0123456789abcdef');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
