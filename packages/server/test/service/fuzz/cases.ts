/**
 * One fuzz case: a request built from the case's generator and the fixtures (host, client
 * address, credentials, CSRF, path, headers, body, method), with the statuses its answer must
 * have when the case decides them, and what Node's HTTP parser makes of it.
 */
import { randomUUID } from 'node:crypto';

import type { Fixtures } from './fixtures.js';
import {
  base64url,
  hostileBearer,
  hostileIds,
  invalidUtf8,
  latin1Garbage,
  nearly,
} from './hostile-values.js';
import { jsonText, mustRefuse, mutateText, mutateValue } from './json-bodies.js';
import type { Header, HeaderValue, Wire } from './raw-http.js';
import type { Rng } from './rng.js';
import type { RouteInfo } from './routes.js';
import { validBody, validId } from './valid-inputs.js';

/** The HTTP contract (docs/http-api.md): bodies over 1 MiB are refused with 413. */
const BODY_LIMIT = 1024 * 1024;
/** Refusals that come before a route looks at its body or its ids (session, CSRF, limits). */
const EARLIER = [401, 403, 404, 429];

export interface Built {
  readonly wire: Wire;
  /** What makes the case hostile, for the report. */
  readonly notes: readonly string[];
  /** Statuses the answer must have, when the case decides it (besides refusals that come first). */
  readonly expect?: readonly number[];
  /** The form whose lock token an answer may carry. */
  readonly formId?: string;
  /** The X-Request-Id the request came with, which the service must not echo. */
  readonly requestId?: string;
}

const JSON_TYPES = [
  'application/json',
  'application/json; charset=utf-8',
  'Application/JSON',
  'application/json;charset=UTF-8',
];
/** Types Fastify has no parser for (it parses JSON and text/plain): refused before the body counts. */
const WRONG_TYPES = [
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=----fuzz',
  'application/octet-stream',
  'application/xml',
];
const ODD_TYPES = [
  'text/plain',
  'application/json; charset=iso-8859-1',
  'application/json; charset=utf-16',
  'application/vnd.api+json',
  'text/json',
  '*/*',
  'json',
  'application/',
  ';',
];

export async function buildCase(route: RouteInfo, index: number, rng: Rng, fx: Fixtures): Promise<Built> {
  const notes: string[] = [];
  const headers: Header[] = [];
  const clean = rng.chance(0.3);
  const hostile = (p: number) => !clean && rng.chance(p);
  let version: Wire['version'] = 'HTTP/1.1';
  let method = route.method;

  // Host and client address (the tests trust one proxy: the last X-Forwarded-For entry counts).
  if (hostile(0.04)) {
    if (rng.chance(0.5)) version = 'HTTP/1.0';
    notes.push(`${version} without Host`);
  } else if (hostile(0.05)) {
    const host = rng.pick<HeaderValue>([
      'evil.example',
      '',
      'a'.repeat(300),
      '127.0.0.1:1',
      '[::1]',
      latin1Garbage(rng, 12),
    ]);
    headers.push(['Host', host]);
    notes.push('hostile Host');
  } else {
    headers.push(['Host', fx.host]);
  }
  headers.push(['Connection', 'close']);
  const ip = `203.0.${rng.int(4)}.${1 + rng.int(250)}`;
  if (hostile(0.1)) {
    headers.push([
      'X-Forwarded-For',
      rng.pick<HeaderValue>([
        'unknown',
        `${ip}, garbage`,
        '1.2.3.4:5678',
        '[2001:db8::1]:443',
        '::ffff:10.0.0.1',
        Array.from({ length: 1000 }, (_unused, i) => `10.0.${i % 250}.1`).join(','),
        ',,,',
        latin1Garbage(rng, 20),
        `${'9'.repeat(400)}.1.1.1`,
      ]),
    ]);
    notes.push('hostile X-Forwarded-For');
  } else {
    headers.push(['X-Forwarded-For', rng.chance(0.2) ? `10.1.2.3, ${ip}` : ip]);
  }

  // Who asks, and how.
  const victim = fx.victims.get(route.key);
  const entitled = route.roles.includes('admin')
    ? fx.admins
    : route.roles.includes('owner')
      ? fx.owners
      : undefined;
  const pool = entitled
    ? rng.chance(0.85)
      ? entitled
      : fx.members
    : rng.chance(0.85)
      ? fx.members
      : fx.outsiders;
  const principal =
    victim && (route.roles.length === 0 || rng.chance(0.7)) ? await fx.mint(victim) : rng.pick(pool);
  const unsafe = !['GET', 'HEAD'].includes(method);
  const mode = clean
    ? route.session || rng.chance(0.3)
      ? rng.pick(['cookie', 'session-bearer', 'access-bearer'] as const)
      : ('anonymous' as const)
    : rng.pick([
        'anonymous',
        'cookie',
        'cookie',
        'session-bearer',
        'access-bearer',
        'garbage-bearer',
        'garbage-bearer',
        'garbage-cookie',
        'cookie-and-bearer',
      ] as const);
  notes.push(`auth: ${mode}`);
  const cookie = `gh_session=${principal.token}`;
  if (mode === 'cookie' || mode === 'cookie-and-bearer') headers.push(['Cookie', cookie]);
  if (mode === 'session-bearer') headers.push(['Authorization', `Bearer ${principal.token}`]);
  if (mode === 'access-bearer') headers.push(['Authorization', `Bearer ${principal.access}`]);
  if (mode === 'garbage-bearer') headers.push(['Authorization', hostileBearer(rng, fx, principal)]);
  if (mode === 'cookie-and-bearer') headers.push(['Authorization', hostileBearer(rng, fx, principal)]);
  if (mode === 'garbage-cookie') {
    headers.push([
      'Cookie',
      rng.pick<HeaderValue>([
        `gh_session=${nearly(rng, principal.token)}`,
        `gh_session=${rng.pick(fx.revoked).token}`,
        `gh_session=; gh_session=${principal.token}`,
        `gh_session=${base64url(rng, 43)}; gh_session=${principal.token}`,
        `__Host-gh_session=${principal.token}`,
        `gh_session="${principal.token}"`,
        `GH_SESSION=${principal.token}`,
        Buffer.concat([Buffer.from('gh_session='), invalidUtf8(rng)]),
        Array.from({ length: 300 }, (_unused, i) => `c${i}=${rng.text(20)}`).join('; '),
        `a=${'b'.repeat(9000)}; ${cookie}`,
        `${cookie}; a=${'b'.repeat(17_000)}`,
        ';;;==;=;',
        `gh_session=${principal.access}`,
      ]),
    ]);
  }
  // CSRF: the token and the origin a page of the service sends, or not.
  if (unsafe && (mode === 'cookie' || mode === 'garbage-cookie')) {
    if (clean || rng.chance(0.5)) {
      headers.push(['X-CSRF-Token', principal.csrf]);
      headers.push(rng.chance(0.5) ? ['Origin', fx.origin] : ['Sec-Fetch-Site', 'same-origin']);
    } else {
      notes.push('hostile CSRF');
      if (rng.chance(0.7))
        headers.push([
          'X-CSRF-Token',
          rng.pick<HeaderValue>([
            rng.pick(fx.outsiders).csrf,
            nearly(rng, principal.csrf),
            'A'.repeat(52),
            'A'.repeat(rng.pick([1000, 8000])),
            '',
            latin1Garbage(rng, 40),
            `${principal.csrf}, ${principal.csrf}`,
          ]),
        ]);
      if (rng.chance(0.7))
        headers.push([
          rng.pick(['Origin', 'Sec-Fetch-Site']),
          rng.pick<HeaderValue>([
            'null',
            'https://evil.example',
            'cross-site',
            'same-site',
            'none',
            fx.origin.replace('http:', 'https:'),
            `${fx.origin}.evil.example`,
            fx.origin.toUpperCase(),
            latin1Garbage(rng, 10),
            'same-origin',
            fx.origin,
          ]),
        ]);
    }
  } else if (hostile(0.2)) {
    headers.push([
      rng.pick(['Origin', 'Sec-Fetch-Site', 'X-CSRF-Token']),
      rng.pick(['https://evil.example', 'cross-site', 'null', 'A'.repeat(52)]),
    ]);
    notes.push('stray CSRF headers');
  }

  // The path: the route with valid, foreign or hostile ids; sometimes raw bytes or a query.
  let formId: string | undefined;
  let hostileId = false;
  const segments: Buffer[] = [];
  for (const part of route.template.split(/(\{[^}]+\})/)) {
    if (!part.startsWith('{')) {
      segments.push(Buffer.from(part));
      continue;
    }
    let id: string | Buffer;
    if (!clean && rng.chance(0.35)) {
      hostileId = true;
      id = rng.chance(0.15) ? invalidUtf8(rng) : hostileIds(rng);
      notes.push('hostile id');
    } else {
      id = await validId(route, rng, fx, principal, clean);
      if (route.template.includes('/forms/')) formId = id;
    }
    segments.push(typeof id === 'string' ? Buffer.from(id, 'latin1') : id);
  }
  if (hostile(0.12)) {
    segments.push(
      rng.chance(0.3)
        ? Buffer.concat([Buffer.from('?q='), invalidUtf8(rng)])
        : Buffer.from(
            `?${rng.pick(['a=1', '__proto__[polluted]=1', 'constructor[prototype][polluted]=1', 'a=%ff%fe', 'a[]=1&a[]=2&a=3', '&&&==&', `a=${'x'.repeat(4000)}`, 'id=1&id=2'])}`,
          ),
    );
    notes.push('hostile query');
  }
  if (hostile(0.03)) {
    segments.push(Buffer.from(rng.pick(['/', '//', '/..', '#frag', '%2F'])));
    notes.push('path suffix');
  }
  if (hostile(0.03)) {
    // The absolute form of the request-target (RFC 9112, 3.2.2), for this host or another.
    segments.unshift(
      Buffer.from(rng.pick([`http://${fx.host}`, 'http://evil.example', 'https://a:b@evil.example:1'])),
    );
    notes.push('absolute-form target');
  }
  const target = Buffer.concat(segments);

  // The lock token header of the lock routes.
  if (route.template.startsWith('/api/v1/forms/{id}') && route.method !== 'GET') {
    const held = formId === undefined ? undefined : fx.lockTokens.get(formId);
    if (clean || rng.chance(0.5)) {
      if (held !== undefined && (route.method !== 'POST' || rng.chance(0.5)))
        headers.push(['X-Lock-Token', held]);
    } else {
      notes.push('hostile X-Lock-Token');
      headers.push([
        'X-Lock-Token',
        rng.pick<HeaderValue>([
          '',
          'A'.repeat(22),
          'A'.repeat(257),
          'A'.repeat(4000),
          latin1Garbage(rng, 30),
          invalidUtf8(rng),
          '__proto__',
          held ?? 'none',
          `${held ?? 'x'}, ${held ?? 'y'}`,
        ]),
      ]);
    }
  }

  // Headers no route reads, or reads only to log (X-Request-Id, beside the service's own id).
  let requestId: string | undefined;
  if (hostile(0.3)) {
    const name = rng.pick([
      'Idempotency-Key',
      'X-Request-Id',
      'User-Agent',
      'Accept',
      'Accept-Encoding',
      'Accept-Language',
      'X-Real-IP',
      'Forwarded',
      'Range',
      'If-None-Match',
      'Expect',
      'X-HTTP-Method-Override',
      'Content-Encoding',
      'Transfer-Encoding',
    ]);
    const value = rng.pick<HeaderValue>([
      randomUUID(),
      'A'.repeat(rng.pick([65, 1000, 8000])),
      latin1Garbage(rng, rng.between(1, 100)),
      invalidUtf8(rng),
      'trace-123',
      'gzip, deflate, br',
      'bytes=0-1',
      'DELETE',
      '100-continue',
      '*',
      'identity',
    ]);
    if (
      !(name === 'Transfer-Encoding' || name === 'Content-Encoding' || name === 'Expect') ||
      rng.chance(0.3)
    ) {
      headers.push([name, value]);
      notes.push(`hostile ${name}`);
    }
  } else if (rng.chance(0.3)) {
    requestId = `fuzz-${index}.${rng.text(8)}`;
    headers.push(['X-Request-Id', requestId]);
  }
  if (hostile(0.05)) {
    for (let i = rng.pick([20, 100]); i > 0; i--)
      headers.push([`X-Fuzz-${i}`, rng.text(rng.between(1, 100))]);
    notes.push('many headers');
  }
  if (hostile(0.02)) {
    headers.push(['X-Huge', 'h'.repeat(rng.pick([12_000, 20_000, 70_000]))]);
    notes.push('huge header');
  }
  // Node keeps the first Content-Type of several: one sent here decides the body's fate.
  let earlierContentType = false;
  for (const repeated of ['Authorization', 'Content-Type', 'X-CSRF-Token', 'Cookie', 'Host']) {
    if (hostile(0.02)) {
      headers.push([repeated, rng.pick(['Bearer x', 'text/plain', 'A'.repeat(52), 'gh_session=x'])]);
      notes.push(`a second ${repeated}`);
      if (repeated === 'Content-Type') earlierContentType = true;
    }
  }

  // The body.
  let body: Buffer | undefined;
  let framing: Wire['framing'] = 'length';
  const expect: number[] = [];
  if (route.bodySchema !== undefined || hostile(0.15)) {
    const valid = await validBody(route, index, rng, fx, formId, victim);
    let text = jsonText(valid);
    let refused = false;
    if (!clean && rng.chance(0.75)) {
      const mutations = rng.between(1, 2);
      let value = valid;
      for (let i = 0; i < mutations; i++) {
        const mutated = mutateValue(rng, value);
        value = mutated.value;
        notes.push(mutated.kind);
      }
      text = jsonText(value);
      refused = mustRefuse(value, route.bodySchema);
      if (rng.chance(0.3)) {
        const mutated = mutateText(rng, text);
        text = mutated.body;
        notes.push(mutated.kind);
        // The text decides now: some of its mutations are refused whatever the value was.
        refused =
          text.length > 0 &&
          (['truncated JSON', 'random bytes'].includes(mutated.kind) || text.includes('"__proto__":{"x":1}'));
      }
    }
    body = text;
    let type: string | undefined = clean ? 'application/json' : rng.pick(JSON_TYPES);
    if (!clean && rng.chance(0.2)) {
      type = rng.chance(0.5) ? rng.pick(WRONG_TYPES) : rng.pick(ODD_TYPES);
      notes.push(`Content-Type ${type}`);
    } else if (!clean && rng.chance(0.05)) {
      type = undefined;
      notes.push('no Content-Type');
    }
    if (type !== undefined) headers.push(['Content-Type', type]);
    if (!clean && rng.chance(0.06)) {
      body = Buffer.concat([body, Buffer.alloc(1024 * 1024 + rng.between(1, 64 * 1024), ' ')]);
      notes.push('body over 1 MiB');
    }
    if (!clean && rng.chance(0.1)) {
      framing = rng.chance(0.7) ? 'chunked' : 'short-length';
      notes.push(`framing ${framing}`);
    }
    // A body of an unsupported type is refused before its size counts; a JSON one over the limit
    // before it is parsed.
    if (
      framing !== 'short-length' &&
      !['GET', 'HEAD'].includes(method) &&
      type !== undefined &&
      !earlierContentType
    ) {
      if (WRONG_TYPES.includes(type) && body.length > 0) expect.push(400, ...EARLIER);
      else if (JSON_TYPES.includes(type) && body.length > BODY_LIMIT) expect.push(413, ...EARLIER);
      else if (JSON_TYPES.includes(type) && refused && route.bodySchema !== undefined && body.length > 0)
        expect.push(400, ...EARLIER);
    }
  } else if (hostile(0.1)) {
    body = rng.chance(0.5) ? rng.bytes(rng.between(1, 4000)) : invalidUtf8(rng);
    headers.push(['Content-Type', rng.pick([...JSON_TYPES, ...WRONG_TYPES])]);
    notes.push('a body where none belongs');
  }

  if (hostile(0.03)) {
    method = rng.pick([
      'PATCH',
      'OPTIONS',
      'TRACE',
      'PROPFIND',
      'PURGE',
      route.method === 'GET' ? 'HEAD' : 'GET',
      'DELETE',
      'PUT',
      'POST',
    ]);
    notes.push(`method ${method}`);
    expect.length = 0;
  } else if (route.method === 'GET' && rng.chance(0.05)) {
    method = 'HEAD';
  }
  if (hostile(0.02)) {
    method = rng.pick(['get', 'G\u00ffT', 'BREW', 'A'.repeat(100), 'GET\tX']);
    notes.push('a method that is not one');
  }

  const wire: Wire = { method, target, version, headers, ...(body === undefined ? {} : { body, framing }) };
  const parser = parserVerdict(wire);
  if (parser !== 'parses') {
    // Node's HTTP parser refuses it (or may): the service never sees the request.
    expect.length = 0;
    if (parser === 'refuses') expect.push(400);
    notes.push(`the HTTP parser ${parser === 'refuses' ? 'refuses it' : 'may refuse it'}`);
  }
  // Fastify refuses an absolute-form target that carries a fragment as a bad URL (400), before
  // a body's size or type counts.
  if (expect.length > 0 && /^https?:\/\/[^#]*#/.test(target.toString('latin1')) && !expect.includes(400)) {
    expect.push(400);
  }
  // HTTP/1.1 needs Host: refused before anything but routing (which may find no route).
  const hostless = version === 'HTTP/1.1' && !headers.some(([name]) => name === 'Host');
  if (hostless && parser !== 'unsure') expect.splice(0, expect.length, 400, 404);
  return {
    wire,
    notes,
    ...(expect.length > 0 && (!hostileId || parser === 'refuses' || hostless) ? { expect } : {}),
    ...(formId === undefined ? {} : { formId }),
    ...(requestId === undefined ? {} : { requestId }),
  };
}

const METHODS = new Set([
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'DELETE',
  'PATCH',
  'OPTIONS',
  'TRACE',
  'PROPFIND',
  'PURGE',
]);
/** Node's default limit on the request line and headers together. */
const MAX_HEADER_BYTES = 16 * 1024;

/**
 * Whether Node's HTTP parser (llhttp, strict) takes the request: a known method, a target of
 * visible ASCII, header values without control characters, headers within 16 KiB. Near the size
 * limit, or with framing headers of the case's own, it cannot be told here.
 */
function parserVerdict(wire: Wire): 'parses' | 'refuses' | 'unsure' {
  if (!METHODS.has(wire.method)) return 'refuses';
  if (wire.target.some((byte) => byte < 0x21 || byte > 0x7e)) return 'refuses';
  let size = wire.method.length + wire.target.length + 12;
  for (const [name, value] of wire.headers) {
    const bytes = typeof value === 'string' ? Buffer.from(value, 'latin1') : value;
    if (bytes.some((byte) => (byte < 0x20 && byte !== 0x09) || byte === 0x7f)) return 'refuses';
    size += name.length + bytes.length + 4;
  }
  if (Math.abs(size - MAX_HEADER_BYTES) < 1024) return 'unsure';
  if (size > MAX_HEADER_BYTES) return 'refuses';
  const framingOwn = wire.headers.some(([name]) => /^(transfer-encoding|content-length|expect)$/i.test(name));
  return framingOwn ? 'unsure' : 'parses';
}
