/**
 * Fixed requests, sent on every run besides the random cases: each holds a boundary that Node's
 * HTTP parser, Fastify's router or the body checks decide before any route runs.
 */
import assert from 'node:assert/strict';

import type { Fixtures } from './fixtures.js';
import type { Header, Wire } from './raw-http.js';

export function regressionCases(fx: Fixtures): { name: string; wire: Wire; expect?: readonly number[] }[] {
  const get = (target: string | Buffer, headers: Header[] = []): Wire => ({
    method: 'GET',
    target: typeof target === 'string' ? Buffer.from(target) : target,
    version: 'HTTP/1.1',
    headers: [['Host', fx.host], ['Connection', 'close'], ['X-Forwarded-For', '203.0.9.9'], ...headers],
  });
  const member = fx.members[0];
  assert.ok(member);
  const raw = (text: string | Buffer): Wire => ({
    method: 'GET',
    target: Buffer.alloc(0),
    version: 'HTTP/1.1',
    headers: [],
    raw: typeof text === 'string' ? Buffer.from(text, 'latin1') : text,
  });
  return [
    // Requests Node's HTTP parser refuses: answered with the envelope, a request id and the
    // security headers (the clientErrorHandler of packages/server/src/service/app.ts), not with
    // Fastify's own body.
    {
      name: 'a control character in a header value',
      wire: get('/health', [['X-A', 'a\u0001b']]),
      expect: [400],
    },
    { name: 'headers over 16 KiB', wire: get('/api/v1/me', [['X-Huge', 'h'.repeat(20_000)]]), expect: [400] },
    {
      name: 'raw invalid UTF-8 in the path',
      wire: get(Buffer.concat([Buffer.from('/api/v1/forms/'), Buffer.from([0xff, 0xfe, 0xc3, 0x28])])),
      expect: [400],
    },
    {
      name: 'a method that is not one',
      wire: raw(`G\u00ffT /health HTTP/1.1\r\nHost: ${fx.host}\r\nConnection: close\r\n\r\n`),
      expect: [400],
    },
    {
      name: 'conflicting Content-Length headers',
      wire: raw(
        `POST /api/v1/auth/signin HTTP/1.1\r\nHost: ${fx.host}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 3\r\nConnection: close\r\n\r\n{}`,
      ),
      expect: [400],
    },
    {
      name: 'a bad chunk size',
      wire: raw(
        `POST /api/v1/auth/signin HTTP/1.1\r\nHost: ${fx.host}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`,
      ),
      expect: [400],
    },
    // Requests Node would answer itself, bare: the service answers them, with the envelope.
    {
      name: 'HTTP/1.1 without Host',
      wire: raw(
        `GET /api/v1/me HTTP/1.1\r\nConnection: close\r\nAuthorization: Bearer ${member.token}\r\n\r\n`,
      ),
      expect: [400],
    },
    { name: 'an Expect that is not 100-continue', wire: get('/health', [['Expect', 'fuzz']]), expect: [200] },
    // Errors Fastify meets before routing: answered with the security headers too.
    { name: 'a malformed percent escape', wire: get('/api/v1/forms/%zz'), expect: [400] },
    { name: 'an id over the router limit', wire: get(`/api/v1/forms/${'a'.repeat(300)}`), expect: [404] },
    // Bodies nested deeper than the service's recursive checks go: malformed, never a 500.
    ...[20_000, 400_000].map((depth) => ({
      name: `JSON nested ${depth} deep`,
      wire: {
        method: 'POST',
        target: Buffer.from(`/api/v1/public/forms/${fx.formPublic}/responses`),
        version: 'HTTP/1.1' as const,
        headers: [
          ['Host', fx.host],
          ['Connection', 'close'],
          ['X-Forwarded-For', '203.0.9.10'],
          ['Content-Type', 'application/json'],
        ] as Header[],
        body: Buffer.from(`{"nonce":"x","answers":{"notes":${'['.repeat(depth)}${']'.repeat(depth)}}}`),
      },
      expect: [400],
    })),
    {
      name: 'prototype pollution through the body',
      wire: {
        method: 'POST',
        target: Buffer.from('/api/v1/forms'),
        version: 'HTTP/1.1',
        headers: [
          ['Host', fx.host],
          ['Connection', 'close'],
          ['Authorization', `Bearer ${member.token}`],
          ['Content-Type', 'application/json'],
        ],
        body: Buffer.from(
          '{"title":"t","fields":[],"__proto__":{"polluted":"fuzz"},"constructor":{"prototype":{"polluted":"fuzz"}}}',
        ),
      },
      expect: [400],
    },
  ];
}
