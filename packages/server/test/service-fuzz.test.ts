/**
 * Hostile input (issue 10): a seeded fuzzer sends randomised bodies, headers, cookies, tokens,
 * very long values and invalid UTF-8 to every route of the reference service, over raw sockets
 * (fetch refuses most of it), and holds every answer to API.md: no 5xx (503 only where API.md
 * allows it), the error envelope with a code from the catalogue and that code's status, no stack
 * trace or internal detail, the security headers; and afterwards the service still answers,
 * logged no error and no uncaught one, and every route got a real (2xx) answer too.
 *
 * The routes come from the service itself (/openapi.json, checked against Fastify's route
 * table). Each case draws from its own generator seeded from FUZZ_SEED and its index, so
 * `FUZZ_SEED=<seed> npm test -- service-fuzz` replays a run (FUZZ_CASE=<index> sends only that
 * case), and FUZZ_ITERATIONS=<cases per route> scales it.
 */
import assert from 'node:assert/strict';
import { randomInt, randomUUID } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';

import { hashPassword } from '../src/service/passwords.js';
import { insertOrganization, insertUser } from '../src/service/users.js';
import { startStandalone, uniquePrefix, type Standalone } from '../../gatehouse/test/harness/topologies.js';
import { createServiceLogger, type ServiceLogger } from '../src/logger.js';
import { Client, freshEmail } from './service/client.js';
import { startService, type RunningService } from './service/start.js';

const SEED = process.env.FUZZ_SEED ? Number.parseInt(process.env.FUZZ_SEED, 10) >>> 0 : randomInt(2 ** 31);
const ITERATIONS = Math.max(1, Number.parseInt(process.env.FUZZ_ITERATIONS ?? '', 10) || 80);
const ONLY_CASE = process.env.FUZZ_CASE === undefined ? undefined : Number(process.env.FUZZ_CASE);
const PASSWORD = 'correct horse battery staple';
/** Requests in flight at once (besides the serial lane of session-ending and lock routes). */
const CONCURRENCY = 6;
const ANSWER_TIMEOUT_MS = 15_000;
/** API.md: bodies over 1 MiB are refused with 413. */
const BODY_LIMIT = 1024 * 1024;

/** API.md's error catalogue: every error answer carries one of these codes with its status. */
const CATALOGUE: Readonly<Record<string, number>> = {
  VALIDATION_ERROR: 400,
  UNAUTHENTICATED: 401,
  CSRF_INVALID: 403,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  LOCKED: 409,
  NONCE_INVALID: 409,
  PAYLOAD_TOO_LARGE: 413,
  RATE_LIMITED: 429,
  SERVICE_UNAVAILABLE: 503,
};
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;
/** Refusals that come before a route looks at its body or its ids (session, CSRF, limits). */
const EARLIER = [401, 403, 404, 429];

/** What no answer may contain: stack frames, source paths, SQL, error class names, driver codes. */
const LEAKS: readonly [string, RegExp][] = [
  ['a stack frame', /\bat [^\s()]+ \([^)]*:\d+:\d+\)|\n\s+at \S/],
  ['a source path', /\/src\/|node_modules|\/work\/|file:\/\/|\.[cm]?[jt]s:\d+/],
  [
    'SQL',
    /\bSELECT\b[^"]*\bFROM\b|\bINSERT INTO\b|\bUPDATE \w+ SET\b|\bDELETE FROM\b|syntax error at or near|violates \w+ constraint|duplicate key value/i,
  ],
  [
    'an error class or code',
    /\b(?:TypeError|RangeError|SyntaxError|ReferenceError|URIError|EvalError|AggregateError|\w+Error:)|\bFST_ERR_|\bERR_[A-Z_]{3,}|\bE(?:CONNREFUSED|CONNRESET|PIPE|TIMEDOUT)\b|Maximum call stack|Unexpected token|JSON at position|Cannot read propert|is not a function|\[object Object\]/,
  ],
];

// ---------------------------------------------------------------------------------------------
// A seeded generator (mulberry32): every case forks its own, so a case is the same whatever
// order the cases run in.

class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  between(low: number, high: number): number {
    return low + this.int(high - low + 1);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[this.int(items.length)] as T;
  }

  text(
    length: number,
    alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_',
  ): string {
    let out = '';
    for (let i = 0; i < length; i++) out += alphabet.charAt(this.int(alphabet.length));
    return out;
  }

  bytes(length: number): Buffer {
    const out = Buffer.alloc(length);
    for (let i = 0; i < length; i++) out[i] = this.int(256);
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP/1.1 over a socket: bytes that fetch and node:http would refuse to send.

type HeaderValue = string | Buffer;
type Header = readonly [string, HeaderValue];

interface Wire {
  readonly method: string;
  /** The request-target (path and query) as bytes. */
  readonly target: Buffer;
  readonly version: 'HTTP/1.1' | 'HTTP/1.0';
  readonly headers: readonly Header[];
  readonly body?: Buffer;
  /** How the body is framed: Content-Length (default), chunked, or a Content-Length that lies low. */
  readonly framing?: 'length' | 'chunked' | 'short-length';
  /** Sent as is instead of the above. */
  readonly raw?: Buffer;
}

interface Answer {
  readonly status: number;
  readonly headers: ReadonlyMap<string, readonly string[]>;
  readonly body: Buffer;
}

function header(answer: Answer, name: string): string | undefined {
  return answer.headers.get(name)?.[0];
}

function encodeWire(wire: Wire): Buffer {
  if (wire.raw) return wire.raw;
  const parts: Buffer[] = [Buffer.from(`${wire.method} `, 'latin1'), wire.target];
  parts.push(Buffer.from(` ${wire.version}\r\n`, 'latin1'));
  for (const [name, value] of wire.headers) {
    parts.push(
      Buffer.from(`${name}: `, 'latin1'),
      typeof value === 'string' ? Buffer.from(value, 'latin1') : value,
    );
    parts.push(Buffer.from('\r\n'));
  }
  const body = wire.body;
  if (body !== undefined) {
    if (wire.framing === 'chunked') {
      parts.push(Buffer.from('Transfer-Encoding: chunked\r\n\r\n'));
      for (let at = 0; at < body.length; at += 64 * 1024) {
        const chunk = body.subarray(at, at + 64 * 1024);
        parts.push(Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n'));
      }
      parts.push(Buffer.from('0\r\n\r\n'));
    } else {
      const length = wire.framing === 'short-length' ? Math.floor(body.length / 2) : body.length;
      parts.push(Buffer.from(`Content-Length: ${length}\r\n\r\n`), body);
    }
  } else {
    parts.push(Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/** Sends one request on a fresh connection and reads the first answer (or says why there was none). */
function send(port: number, wire: Wire): Promise<Answer | string> {
  return new Promise((resolve) => {
    let received = Buffer.alloc(0);
    let head: { status: number; headers: Map<string, string[]>; bodyAt: number } | undefined;
    let settled = false;
    const socket = net.connect(port, '127.0.0.1');
    const finish = (result: Answer | string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => {
      finish(`no answer within ${ANSWER_TIMEOUT_MS} ms`);
    }, ANSWER_TIMEOUT_MS);
    const answer = (body: Buffer): Answer => ({
      status: head?.status ?? 0,
      headers: head?.headers ?? new Map(),
      body,
    });
    const parse = (closed: boolean) => {
      if (!head) {
        const end = received.indexOf('\r\n\r\n');
        if (end === -1) {
          if (closed) finish(received.length === 0 ? 'connection closed without an answer' : 'a torn answer');
          return;
        }
        const lines = received.subarray(0, end).toString('latin1').split('\r\n');
        const status = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
        if (!status?.[1]) {
          finish(`not an HTTP answer: ${JSON.stringify(lines[0])}`);
          return;
        }
        const headers = new Map<string, string[]>();
        for (const line of lines.slice(1)) {
          const colon = line.indexOf(':');
          const name = line.slice(0, colon).trim().toLowerCase();
          headers.set(name, [...(headers.get(name) ?? []), line.slice(colon + 1).trim()]);
        }
        head = { status: Number(status[1]), headers, bodyAt: end + 4 };
        if (head.status === 100) {
          received = received.subarray(head.bodyAt);
          head = undefined;
          parse(closed);
          return;
        }
      }
      const body = received.subarray(head.bodyAt);
      const length = head.headers.get('content-length')?.[0];
      const type = head.headers.get('content-type')?.[0] ?? '';
      if (wire.method === 'HEAD' || head.status === 204 || head.status === 304) {
        finish(answer(Buffer.alloc(0)));
      } else if (type.startsWith('text/event-stream')) {
        // A live stream: its first event (or comment) is enough.
        if (body.includes('\n\n') || closed) finish(answer(body));
      } else if (length !== undefined) {
        if (body.length >= Number(length)) finish(answer(body.subarray(0, Number(length))));
        else if (closed) finish(`the answer's body was cut short (${body.length} of ${length} bytes)`);
      } else if (/chunked/i.test(head.headers.get('transfer-encoding')?.[0] ?? '')) {
        const decoded = dechunk(body);
        if (decoded) finish(answer(decoded));
        else if (closed) finish('a chunked answer was cut short');
      } else if (closed) {
        finish(answer(body));
      }
    };
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      parse(false);
    });
    // A server that answers before reading a whole (oversized) body resets the connection: the
    // answer it sent first still counts.
    socket.on('error', () => undefined);
    socket.on('close', () => {
      parse(true);
    });
    socket.on('connect', () => {
      socket.write(encodeWire(wire), () => undefined);
    });
  });
}

/** Opens an event stream and leaves it open once its first event (or comment) has come. */
function openStream(port: number, wire: Wire): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    let received = '';
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(encodeWire(wire));
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('the event stream did not open'));
    }, ANSWER_TIMEOUT_MS);
    socket.on('error', reject);
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      if (!received.startsWith('HTTP/1.1 200')) reject(new Error(received.slice(0, 200)));
      else if (received.indexOf('\n\n', received.indexOf('\r\n\r\n') + 4) !== -1) {
        clearTimeout(timer);
        resolve(socket);
      }
    });
  });
}

function dechunk(body: Buffer): Buffer | null {
  const out: Buffer[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = body.indexOf('\r\n', at);
    if (lineEnd === -1) return null;
    const size = Number.parseInt(body.subarray(at, lineEnd).toString('latin1'), 16);
    if (Number.isNaN(size)) return null;
    if (size === 0) return Buffer.concat(out);
    if (body.length < lineEnd + 2 + size + 2) return null;
    out.push(body.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
}

// ---------------------------------------------------------------------------------------------
// What the fuzzer knows of the service: the routes (from /openapi.json) and the fixtures.

interface RouteInfo {
  readonly method: string;
  /** The OpenAPI path, `/api/v1/forms/{id}`. */
  readonly template: string;
  readonly key: string;
  readonly bodySchema: unknown;
  readonly session: boolean;
  readonly roles: readonly string[];
  readonly serial: boolean;
}

/** Routes that end sessions or move the edit lock: one request at a time, on their own users. */
const SERIAL_ROUTES = new Set([
  'POST /api/v1/auth/signin',
  'POST /api/v1/auth/signout',
  'DELETE /api/v1/sessions',
  'DELETE /api/v1/sessions/{id}',
  'POST /admin/api/sessions/{handle}/terminate',
  'POST /api/v1/forms/{id}/lock',
  'DELETE /api/v1/forms/{id}/lock',
  'PUT /api/v1/forms/{id}',
]);
/** Routes whose acting session may be ended by the request: each case mints its own. */
const VICTIM_ROUTES = new Set([
  'POST /api/v1/auth/signin',
  'POST /api/v1/auth/signout',
  'DELETE /api/v1/sessions',
  'DELETE /api/v1/sessions/{id}',
  'POST /admin/api/sessions/{handle}/terminate',
]);
/** Operations routes answer bare (no envelope) when they succeed; /ready's 503 is bare too. */
const BARE = new Set(['/health', '/ready', '/metrics', '/openapi.json', '/.well-known/jwks.json']);

interface User {
  readonly id: string;
  readonly email: string;
  readonly organizationId: string;
  readonly roles: readonly string[];
}

interface Principal {
  readonly user: User;
  readonly handle: string;
  readonly token: string;
  readonly csrf: string;
  readonly access: string;
}

interface Fixtures {
  readonly running: RunningService;
  readonly port: number;
  readonly origin: string;
  readonly host: string;
  readonly members: readonly Principal[];
  readonly outsiders: readonly Principal[];
  readonly admins: readonly Principal[];
  /** A member the fuzz never uses: a fresh API allowance for the flood checks. */
  readonly quiet: Principal;
  /** Ended sessions: their tokens must be refused. */
  readonly revoked: readonly Principal[];
  /** One user per session-ending route, whose sessions each case mints afresh. */
  readonly victims: ReadonlyMap<string, User>;
  /** Sessions the admin terminate route may end. */
  readonly terminateTarget: User;
  /** A form with a field of every type (and one named `constructor`), never rewritten. */
  readonly formPublic: string;
  /** The form the lock and update routes work on. */
  readonly formEdit: string;
  readonly formForeign: string;
  /** Responses of the caller's organization: the first submitted at set-up, the others by the run. */
  readonly responses: string[];
  readonly responseForeign: string;
  readonly invites: string[];
  /** An invite code already used, and a form nonce already spent. */
  readonly usedInvite: string;
  readonly spentNonce: string;
  /** The newest edit-lock token per form, from the lock route's answers. */
  readonly lockTokens: Map<string, string>;
  mint(user: User): Promise<Principal>;
  nonce(formId: string): Promise<string>;
}

interface Field {
  readonly name: string;
  readonly label: string;
  readonly type: string;
  readonly options?: readonly string[];
}

const PUBLIC_FIELDS: readonly Field[] = [
  { name: 'fullName', label: 'Full name', type: 'text' },
  { name: 'notes', label: 'Notes', type: 'textarea' },
  { name: 'age', label: 'Age', type: 'number' },
  { name: 'dob', label: 'Date of birth', type: 'date' },
  { name: 'email', label: 'Email', type: 'email' },
  { name: 'phone', label: 'Phone', type: 'phone' },
  { name: 'plan', label: 'Plan', type: 'select', options: ['basic', 'plus'] },
  { name: 'consent', label: 'Consent', type: 'checkbox' },
  { name: 'constructor', label: 'Named like a prototype member', type: 'text' },
];

async function setUp(running: RunningService): Promise<Fixtures> {
  const { context } = running.service;
  const { gh, db } = context;
  const base = running.base;
  const url = new URL(base);
  const passwordHash = await hashPassword(PASSWORD);
  const organization = async () => {
    const id = randomUUID();
    await insertOrganization(db, id);
    return id;
  };
  const user = async (organizationId: string, roles: readonly string[] = ['member']): Promise<User> => {
    const made = { id: randomUUID(), email: freshEmail(), organizationId, roles };
    assert.ok(await insertUser(db, { ...made, passwordHash }));
    return made;
  };
  const mint = async (of: User): Promise<Principal> => {
    const { token, session } = await gh.sessions.create({
      userId: of.id,
      organizationId: of.organizationId,
      roles: of.roles,
      ip: '198.51.100.7',
      userAgent: 'service-fuzz',
      authMethod: 'password',
    });
    const [csrf, access] = await Promise.all([
      gh.csrf.issue(session),
      context.accessTokens.issue({ sub: of.id, sid: session.handle }),
    ]);
    return { user: of, handle: session.handle, token, csrf, access: access.token };
  };

  // The owner goes through the real sign-up and sign-in; the others are made directly (one
  // password hash for all), so that the per-user API limit is spread over many users.
  const owner = new Client(base);
  const ownerEmail = freshEmail();
  await owner.signUp(ownerEmail);
  await owner.signIn(ownerEmail);
  assert.ok(owner.user && owner.sessionId && owner.sessionToken && owner.csrfToken && owner.accessToken);
  const ownerUser: User = { ...owner.user };
  const ownerPrincipal: Principal = {
    user: ownerUser,
    handle: owner.sessionId,
    token: owner.sessionToken,
    csrf: owner.csrfToken,
    access: owner.accessToken,
  };
  const orgA = ownerUser.organizationId;
  const members = [ownerPrincipal];
  for (let i = 0; i < 9; i++) members.push(await mint(await user(orgA)));
  const quiet = await mint(await user(orgA));
  const orgB = await organization();
  const outsiders = [await mint(await user(orgB)), await mint(await user(orgB))];
  const orgC = await organization();
  const admins: Principal[] = [];
  for (let i = 0; i < 3; i++) admins.push(await mint(await user(orgC, ['member', 'admin'])));
  const revoked: Principal[] = [];
  for (let i = 0; i < 2; i++) {
    const ended = await mint(members[1 + i]?.user ?? ownerUser);
    assert.ok(await gh.sessions.revoke(ended.handle, { cause: 'signout' }));
    revoked.push(ended);
  }
  const victims = new Map<string, User>();
  for (const route of VICTIM_ROUTES) {
    victims.set(
      route,
      await (route.startsWith('POST /admin/') ? user(orgC, ['member', 'admin']) : user(orgA)),
    );
  }
  const terminateTarget = await user(orgA);

  const ownerCreates = async (body: unknown) => {
    const created = await owner.post('/api/v1/forms', body);
    assert.equal(created.status, 201, created.text);
    return String(created.json.data.form.id);
  };
  const formPublic = await ownerCreates({ title: 'Intake', fields: PUBLIC_FIELDS });
  const formEdit = await ownerCreates({
    title: 'Edit me',
    fields: [{ name: 'a', label: 'A', type: 'text' }],
  });
  const outsider = outsiders[0];
  assert.ok(outsider);
  const foreign = await new Client(base).request('POST', '/api/v1/forms', {
    as: 'anonymous',
    body: { title: 'Elsewhere', fields: [{ name: 'b', label: 'B', type: 'text' }] },
    headers: { authorization: `Bearer ${outsider.token}` },
  });
  assert.equal(foreign.status, 201, foreign.text);
  const formForeign = String(foreign.json.data.form.id);
  const submit = async (formId: string, answers: Record<string, unknown>) => {
    const visitor = new Client(base);
    const page = await visitor.get(`/api/v1/public/forms/${formId}`);
    assert.equal(page.status, 200, page.text);
    const sent = await visitor.post(`/api/v1/public/forms/${formId}/responses`, {
      nonce: page.json.data.nonce,
      answers,
    });
    assert.equal(sent.status, 201, sent.text);
    return { id: String(sent.json.data.response.id), nonce: String(page.json.data.nonce) };
  };
  const first = await submit(formPublic, { fullName: 'Jane Q. Patient', plan: 'plus', consent: true });
  const responseForeign = (await submit(formForeign, { b: 'elsewhere' })).id;
  const invites: string[] = [];
  for (let i = 0; i < 6; i++) {
    const invite = await owner.post('/api/v1/organizations/invites');
    assert.equal(invite.status, 201, invite.text);
    invites.push(String(invite.json.data.inviteCode));
  }
  const usedInvite = invites.pop() ?? '';
  await new Client(base).signUp(freshEmail(), PASSWORD, usedInvite);
  return {
    running,
    port: Number(url.port),
    origin: base,
    host: url.host,
    members,
    quiet,
    outsiders,
    admins,
    revoked,
    victims,
    terminateTarget,
    formPublic,
    formEdit,
    formForeign,
    responses: [first.id],
    responseForeign,
    invites,
    usedInvite,
    spentNonce: first.nonce,
    lockTokens: new Map(),
    mint,
    nonce: async (formId) => (await gh.nonces.issue(`form:${formId}`, { ttl: 30 * 60 * 1000 })).nonce,
  };
}

// ---------------------------------------------------------------------------------------------
// Hostile values.

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

function hostileString(rng: Rng): string {
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

function invalidUtf8(rng: Rng): Buffer {
  const parts: Buffer[] = [];
  for (let i = rng.between(1, 3); i > 0; i--) {
    parts.push(Buffer.from(rng.text(rng.between(0, 6))), Buffer.from(rng.pick(INVALID_UTF8)));
  }
  return Buffer.concat(parts);
}

/** A header value with raw bytes 0x80-0xFF (allowed on the wire as obs-text, never valid UTF-8). */
function latin1Garbage(rng: Rng, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) out[i] = rng.chance(0.5) ? 0x80 + rng.int(128) : 0x21 + rng.int(94);
  return out;
}

function base64url(rng: Rng, length: number): string {
  return rng.text(length, 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_');
}

function b64json(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/** A token that is almost the real one: a character changed, cut, grown, or its case flipped. */
function nearly(rng: Rng, token: string): string {
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
function hostileBearer(rng: Rng, fx: Fixtures, valid: Principal): HeaderValue {
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

// ---------------------------------------------------------------------------------------------
// JSON bodies: a valid one for the route, then mutations of its value and of its text.

function randomFields(rng: Rng): Field[] {
  const types = ['text', 'textarea', 'number', 'date', 'email', 'phone', 'select', 'checkbox'];
  const fields: Field[] = [];
  for (let i = rng.between(0, 5); i > 0; i--) {
    const type = rng.pick(types);
    fields.push({
      name: `f${fields.length}${rng.text(rng.between(0, 6), 'abcXYZ_09')}`,
      label: rng.pick(VALID_TEXT).slice(0, 500) || 'x',
      type,
      ...(type === 'select'
        ? { options: ['a', rng.pick(VALID_TEXT).slice(0, 200) || 'b', rng.text(5)] }
        : {}),
    });
  }
  return fields;
}

/** Text a form or an answer may hold: odd, but storable (no NUL, no lone surrogate). */
const VALID_TEXT: readonly string[] = [
  'Jane Q. Patient',
  'Zoë Ünïcödé',
  'emoji 😀👩‍⚕️ and CJK 患者',
  '\u202eright to left\u202c',
  'tab\tnew\nline\r\nreturn',
  '\u0007bell \u001b[31mescape',
  '<script>alert(1)</script>',
  "'; DROP TABLE forms; --",
  '(((((((((()))))))))) \\ / % _',
  'x'.repeat(1000),
  'word '.repeat(200),
];

function validAnswers(rng: Rng): Record<string, unknown> {
  const answers: Record<string, unknown> = {};
  const all: Record<string, unknown> = {
    fullName: rng.pick(VALID_TEXT),
    notes: rng.pick(['', ...VALID_TEXT, 'n'.repeat(10_000), '\n'.repeat(10_000), 'word '.repeat(2000)]),
    age: rng.pick([0, 42, -1, 1.5, 1e300]),
    dob: rng.pick(['1980-02-29', '2000-01-01']),
    email: 'patient@clinic.example',
    phone: '+1 (555) 010-0000',
    plan: rng.pick(['basic', 'plus']),
    consent: rng.chance(0.5),
    constructor: 'a field named constructor',
  };
  for (const [name, value] of Object.entries(all)) if (rng.chance(0.6)) answers[name] = value;
  return answers;
}

/** A value for a JSON schema (for routes the fuzzer has no fixtures for). */
function fromSchema(schema: unknown, rng: Rng, depth = 0): unknown {
  if (typeof schema !== 'object' || schema === null || depth > 6) return null;
  const s = schema as Record<string, unknown>;
  if (Array.isArray(s.enum)) return rng.pick(s.enum as unknown[]);
  const type = Array.isArray(s.type) ? (s.type[0] as unknown) : s.type;
  switch (type) {
    case 'object': {
      const out: Record<string, unknown> = {};
      const required = new Set(Array.isArray(s.required) ? (s.required as string[]) : []);
      for (const [name, property] of Object.entries((s.properties ?? {}) as Record<string, unknown>)) {
        if (required.has(name) || rng.chance(0.5)) out[name] = fromSchema(property, rng, depth + 1);
      }
      return out;
    }
    case 'array':
      return Array.from({ length: rng.between(Number(s.minItems ?? 0), 3) }, () =>
        fromSchema(s.items, rng, depth + 1),
      );
    case 'integer':
    case 'number':
      return rng.between(0, 100);
    case 'boolean':
      return rng.chance(0.5);
    case 'string':
      return rng.text(Math.max(Number(s.minLength ?? 1), 3));
    default:
      return null;
  }
}

/** Numbers JSON.stringify cannot write: a marker string, replaced in the text after. */
const RAW_NUMBERS = [
  '1e309',
  '-1e309',
  '9007199254740993',
  '-0',
  '1e-400',
  '123456789012345678901234567890',
  '0.1e-99999',
];

function wrongValue(rng: Rng): unknown {
  switch (rng.int(12)) {
    case 0:
      return null;
    case 1:
      return rng.chance(0.5);
    case 2:
      return rng.pick([0, -1, 3.14, 2 ** 53, -(2 ** 31)]);
    case 3:
      return `@@raw:${rng.pick(RAW_NUMBERS)}@@`;
    case 4:
      return [];
    case 5:
      return {};
    case 6:
      return [hostileString(rng)];
    case 7:
      return { $gt: '', $ne: null };
    case 8:
      return deepValue(rng);
    default:
      return hostileString(rng);
  }
}

function deepValue(rng: Rng): unknown {
  // As text, so that building it costs nothing here; parsed only by the service.
  const depth = rng.pick([64, 1000, 20_000, 200_000]);
  return rng.chance(0.5)
    ? `@@raw:${'['.repeat(depth)}${']'.repeat(depth)}@@`
    : `@@raw:${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}@@`;
}

/** Every place in a JSON value: object keys and array indexes down from the root. */
function places(value: unknown, path: (string | number)[] = [], out: (string | number)[][] = []) {
  out.push(path);
  if (Array.isArray(value)) value.forEach((item, index) => places(item, [...path, index], out));
  else if (typeof value === 'object' && value !== null) {
    for (const [key, item] of Object.entries(value)) places(item, [...path, key], out);
  }
  return out;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  // defineProperty, so that `__proto__` is a key of the JSON and not this object's prototype.
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

interface BodyMutation {
  readonly value: unknown;
  readonly kind: string;
}

function mutateValue(rng: Rng, original: unknown): BodyMutation {
  // A copy through JSON keeps own `__proto__` keys as keys.
  const value = JSON.parse(JSON.stringify(original)) as unknown;
  const all = places(value);
  const path = rng.pick(all.length > 1 ? all.slice(1) : all);
  const parentPath = path.slice(0, -1);
  let parent: unknown = value;
  for (const step of parentPath) parent = (parent as Record<string | number, unknown>)[step];
  const last = path[path.length - 1];
  const holder = parent as Record<string, unknown>;
  const holderIsObject = isRecord(parent);
  switch (rng.int(9)) {
    case 0:
      return { value: wrongTopLevel(rng), kind: 'top-level non-object' };
    case 1:
      if (last !== undefined && holderIsObject) {
        // eslint-disable-next-line @typescript-eslint/no-dynamic-delete -- removing a field is the mutation
        delete holder[String(last)];
        return { value, kind: `missing ${path.join('/')}` };
      }
      return { value: {}, kind: 'empty object' };
    case 2:
    case 3: {
      if (last === undefined) return { value: wrongTopLevel(rng), kind: 'top-level non-object' };
      setOwn(holder, String(last), wrongValue(rng));
      return { value, kind: `wrong value at ${path.join('/')}` };
    }
    case 4: {
      const target = holderIsObject ? holder : value;
      if (!isRecord(target)) return { value, kind: 'unchanged' };
      const key = rng.pick(['__proto__', 'constructor', 'prototype', 'isAdmin', 'roles', '$where', '']);
      const payload =
        key === 'constructor' ? { prototype: { polluted: 'fuzz' } } : { polluted: 'fuzz', isAdmin: true };
      setOwn(target, key, payload);
      return { value, kind: `extra key ${key}` };
    }
    case 5: {
      if (typeof value !== 'object' || value === null || Array.isArray(value))
        return { value, kind: 'unchanged' };
      const extra = value as Record<string, unknown>;
      for (let i = rng.pick([3, 300, 20_000]); i > 0; i--) extra[`extra${i}`] = rng.pick([1, 'x', null]);
      return { value, kind: 'many extra fields' };
    }
    case 6: {
      if (last === undefined) return { value: deepValue(rng), kind: 'deep nesting' };
      setOwn(holder, String(last), deepValue(rng));
      return { value, kind: `deep nesting at ${path.join('/')}` };
    }
    case 7: {
      if (last === undefined) return { value, kind: 'unchanged' };
      setOwn(
        holder,
        String(last),
        Array.from({ length: rng.pick([1000, 100_000]) }, () => 0),
      );
      return { value, kind: `long array at ${path.join('/')}` };
    }
    default: {
      if (last === undefined) return { value, kind: 'unchanged' };
      setOwn(holder, String(last), hostileString(rng));
      return { value, kind: `hostile string at ${path.join('/')}` };
    }
  }
}

// eslint-disable-next-line no-control-regex -- NUL is what the service must refuse
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * Whether a (mutated) body must be refused with 400 whatever else the request does: not an
 * object, a `__proto__` key or a `constructor.prototype` anywhere, NUL or half a surrogate pair
 * anywhere, a required field missing, or a field of the wrong type or length (by the route's
 * schema, top level only).
 */
function mustRefuse(value: unknown, schema: unknown): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return true;
  const poisoned = (node: unknown, depth: number): boolean => {
    if (typeof node === 'string') return UNSTORABLE.test(node);
    if (typeof node !== 'object' || node === null || depth > 50) return false;
    return Object.entries(node).some(
      ([key, inner]) =>
        key === '__proto__' ||
        UNSTORABLE.test(key) ||
        (key === 'constructor' && typeof inner === 'object' && inner !== null && 'prototype' in inner) ||
        poisoned(inner, depth + 1),
    );
  };
  if (poisoned(value, 0)) return true;
  const { required = [], properties = {} } = (schema ?? {}) as {
    required?: string[];
    properties?: Record<string, { type?: string; minLength?: number; maxLength?: number }>;
  };
  const fields = value as Record<string, unknown>;
  if (required.some((name) => !Object.hasOwn(fields, name))) return true;
  return Object.entries(properties).some(([name, property]) => {
    if (!Object.hasOwn(fields, name)) return false;
    const field = fields[name];
    // A raw marker stands for a number, an array or an object: never a string.
    const raw = typeof field === 'string' && field.startsWith('@@raw:');
    const kind = raw ? 'raw' : Array.isArray(field) ? 'array' : field === null ? 'null' : typeof field;
    if (property.type === 'string') {
      if (kind !== 'string') return true;
      // Code points, as the schema validator counts them.
      const length = (field as string).replace(/[\ud800-\udbff][\udc00-\udfff]/g, '_').length;
      return length < (property.minLength ?? 0) || length > (property.maxLength ?? Infinity);
    }
    if (property.type === 'object') return kind !== 'object' && kind !== 'raw';
    if (property.type === 'array') return kind !== 'array' && kind !== 'raw';
    return false;
  });
}

function wrongTopLevel(rng: Rng): unknown {
  return rng.pick<unknown>([null, [], [{}], 'a string', 42, true, '@@raw:1e309@@']);
}

function jsonText(value: unknown): Buffer {
  let text = JSON.stringify(value);
  for (let at = text.indexOf('"@@raw:'); at !== -1; at = text.indexOf('"@@raw:', at)) {
    const end = text.indexOf('@@"', at + 7);
    const raw = text.slice(at + 7, end).replaceAll('\\"', '"');
    text = text.slice(0, at) + raw + text.slice(end + 3);
    at += raw.length;
  }
  return Buffer.from(text);
}

/** Mutations of the JSON text itself. */
function mutateText(rng: Rng, text: Buffer): { body: Buffer; kind: string } {
  const at = rng.int(text.length + 1);
  switch (rng.int(8)) {
    case 0:
      return { body: text.subarray(0, Math.min(at, text.length - 1)), kind: 'truncated JSON' };
    case 1:
      return {
        body: Buffer.concat([
          text.subarray(0, at),
          Buffer.from(rng.pick(['}', ']', ',', '"', ':', '\\', 'x'])),
          text.subarray(at),
        ]),
        kind: 'a stray character',
      };
    case 2: {
      // Invalid UTF-8 inside a string (after a quote).
      const quote = text.indexOf('"', at) === -1 ? text.indexOf('"') : text.indexOf('"', at);
      const where = quote === -1 ? at : quote + 1;
      return {
        body: Buffer.concat([text.subarray(0, where), invalidUtf8(rng), text.subarray(where)]),
        kind: 'invalid UTF-8 in a string',
      };
    }
    case 3:
      return { body: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), text]), kind: 'a BOM' };
    case 4:
      return {
        body: Buffer.from(
          text.toString().replace(/^\{/, '{"email":1,"email":"dup@clinic.example","__proto__":{"x":1},'),
        ),
        kind: 'duplicate and __proto__ keys in the text',
      };
    case 5:
      return {
        body: Buffer.from(
          rng.pick([
            '',
            ' ',
            'null',
            '[]',
            '"text"',
            '1',
            'NaN',
            'undefined',
            '{',
            '{}}',
            '{"a":}',
            "{'a':1}",
          ]),
        ),
        kind: 'not a JSON object',
      };
    case 6:
      return { body: rng.bytes(rng.between(1, 2000)), kind: 'random bytes' };
    default:
      return {
        body: Buffer.concat([text, Buffer.from(rng.pick([' garbage', '\u0000', '\n{}', ']']))]),
        kind: 'trailing garbage',
      };
  }
}

// ---------------------------------------------------------------------------------------------
// One case: a request built from the case's generator and the fixtures.

interface Built {
  readonly wire: Wire;
  /** What makes the case hostile, for the report. */
  readonly notes: readonly string[];
  /** Statuses the answer must have, when the case decides it (besides refusals that come first). */
  readonly expect?: readonly number[];
  /** The form whose lock token an answer may carry. */
  readonly formId?: string;
  /** Whether the request came with an X-Request-Id the service must echo. */
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

function hostileIds(rng: Rng): string {
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

function randomishUuid(rng: Rng): string {
  const hex = rng.text(32, '0123456789abcdef');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

async function buildCase(route: RouteInfo, index: number, rng: Rng, fx: Fixtures): Promise<Built> {
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
  const pool = route.roles.includes('admin')
    ? rng.chance(0.85)
      ? fx.admins
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

  // Headers no route reads, or reads only to echo (X-Request-Id).
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

/** A real id for the route's parameter: the caller's own (mostly), or another organization's. */
async function validId(
  route: RouteInfo,
  rng: Rng,
  fx: Fixtures,
  principal: Principal,
  clean: boolean,
): Promise<string> {
  const t = route.template;
  if (t.startsWith('/api/v1/responses/')) {
    // Responses the run submitted too (odd answers, forms whose fields it rewrote).
    return clean || rng.chance(0.8) ? rng.pick(fx.responses) : fx.responseForeign;
  }
  if (t.includes('/forms/')) {
    if (!clean && rng.chance(0.2)) return fx.formForeign;
    const editing = route.method !== 'GET' && !t.includes('/public/');
    return editing ? fx.formEdit : rng.chance(0.7) ? fx.formPublic : fx.formEdit;
  }
  if (t === '/api/v1/sessions/{id}') {
    // Another session of the same (victim) user, the current one, or someone else's.
    if (!clean && rng.chance(0.2)) return rng.pick(fx.members).handle;
    return rng.chance(0.7) ? (await fx.mint(principal.user)).handle : principal.handle;
  }
  if (t === '/admin/api/sessions/{handle}/terminate') {
    // Someone's session, or (when the caller's own session is a disposable one) the caller's.
    const own = principal.user === fx.victims.get(route.key) && rng.chance(0.3);
    return own ? principal.handle : (await fx.mint(fx.terminateTarget)).handle;
  }
  return rng.text(12);
}

async function validBody(
  route: RouteInfo,
  index: number,
  rng: Rng,
  fx: Fixtures,
  formId: string | undefined,
  victim: User | undefined,
): Promise<unknown> {
  switch (route.key) {
    case 'POST /api/v1/auth/signup': {
      const orgA = Buffer.from(fx.members[0]?.user.organizationId ?? '').toString('base64url');
      const invite = rng.chance(0.8)
        ? undefined
        : rng.pick([
            fx.invites.shift() ?? fx.usedInvite,
            fx.usedInvite,
            `${orgA}.${base64url(rng, 60)}`,
            `${orgA}.`,
            `${Buffer.from(randomishUuid(rng)).toString('base64url')}.${base64url(rng, 60)}`,
            `${Buffer.from('../../etc').toString('base64url')}.x`,
            '.',
            'nope.nope',
            'x'.repeat(512),
          ]);
      return {
        email: `fuzz-${index}-${rng.text(6)}@clinic.example`,
        password: PASSWORD,
        ...(invite === undefined ? {} : { inviteCode: invite }),
      };
    }
    case 'POST /api/v1/auth/signin':
      return rng.chance(0.8)
        ? { email: victim?.email ?? 'nobody@clinic.example', password: PASSWORD }
        : { email: `nobody-${index}@clinic.example`, password: PASSWORD };
    case 'POST /api/v1/forms':
    case 'PUT /api/v1/forms/{id}':
      return { title: rng.pick(['Intake', 'Ünïcödé 😀', 't'.repeat(300)]), fields: randomFields(rng) };
    case 'POST /api/v1/public/forms/{id}/responses': {
      const id = formId ?? fx.formPublic;
      const fresh = await fx.nonce(id);
      const nonce = rng.pick([
        fresh,
        fresh,
        fresh,
        fresh,
        fresh,
        nearly(rng, fresh),
        await fx.nonce(id === fx.formEdit ? fx.formPublic : fx.formEdit),
        fx.spentNonce,
      ]);
      return { nonce, answers: id === fx.formPublic ? validAnswers(rng) : {} };
    }
    default:
      return route.bodySchema === undefined ? { fuzz: rng.text(8) } : fromSchema(route.bodySchema, rng);
  }
}

// ---------------------------------------------------------------------------------------------
// Regression cases: fixed requests, sent on every run (each found a bug or guards a boundary).

function regressionCases(fx: Fixtures): { name: string; wire: Wire; expect?: readonly number[] }[] {
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
    // Requests Node's HTTP parser refuses answered with Fastify's own body, without the envelope,
    // a request id or the security headers (fixed in src/service/app.ts: clientErrorHandler).
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
    // Node answered these itself, bare (fixed in src/service/app.ts too).
    {
      name: 'HTTP/1.1 without Host',
      wire: raw(
        `GET /api/v1/me HTTP/1.1\r\nConnection: close\r\nAuthorization: Bearer ${member.token}\r\n\r\n`,
      ),
      expect: [400],
    },
    { name: 'an Expect that is not 100-continue', wire: get('/health', [['Expect', 'fuzz']]), expect: [200] },
    // Errors Fastify meets before routing lacked the security headers (fixed with the above).
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

// ---------------------------------------------------------------------------------------------
// The checks every answer gets.

function describeWire(wire: Wire): string {
  const printable = (value: Buffer | string) => {
    const text = typeof value === 'string' ? value : value.toString('latin1');
    const shown = text.length > 160 ? `${text.slice(0, 160)}…(${text.length} chars)` : text;
    return JSON.stringify(shown);
  };
  if (wire.raw) return `raw ${printable(wire.raw)}`;
  const headers = wire.headers.map(([name, value]) => `${name}: ${printable(value)}`).join(', ');
  const body = wire.body === undefined ? '' : ` body(${wire.framing ?? 'length'}) ${printable(wire.body)}`;
  return `${printable(wire.method)} ${printable(wire.target)} ${wire.version} [${headers}]${body}`;
}

function describeAnswer(answer: Answer): string {
  const headers = [...answer.headers.entries()].map(([name, values]) => `${name}: ${values.join(', ')}`);
  return `${answer.status} [${headers.join('; ')}] ${JSON.stringify(answer.body.toString('utf8').slice(0, 300))}`;
}

interface CheckContext {
  readonly template: string;
  readonly allow503: boolean;
  readonly requestId?: string;
  readonly expect?: readonly number[];
}

function check(answer: Answer, wire: Wire, ctx: CheckContext): string[] {
  const problems: string[] = [];
  const { status } = answer;
  const text = answer.body.toString('utf8');
  const type = header(answer, 'content-type') ?? '';
  const bareReady = ctx.template === '/ready' && status === 503;
  const stream = type.startsWith('text/event-stream');

  if (status >= 500) {
    const allowed = status === 503 && (bareReady || (ctx.allow503 && text.includes('"SERVICE_UNAVAILABLE"')));
    if (!allowed) problems.push(`answered ${status}`);
  }
  if (ctx.expect && !ctx.expect.includes(status)) {
    problems.push(`answered ${status}, expected one of ${ctx.expect.join(', ')}`);
  }

  // The error envelope, with a code of the catalogue and its status.
  if (status >= 400 && !bareReady && wire.method === 'HEAD') {
    if (!type.startsWith('application/json'))
      problems.push(`error with content-type ${JSON.stringify(type)}`);
  } else if (status >= 400 && !bareReady) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (!type.startsWith('application/json'))
      problems.push(`error with content-type ${JSON.stringify(type)}`);
    const error = isRecord(parsed) ? parsed.error : undefined;
    if (
      !isRecord(parsed) ||
      Object.keys(parsed).sort().join() !== 'error,success' ||
      parsed.success !== false ||
      !isRecord(error) ||
      Object.keys(error).sort().join() !== 'code,message' ||
      typeof error.message !== 'string' ||
      error.message === ''
    ) {
      problems.push(`error without the envelope: ${text.slice(0, 200)}`);
    } else {
      const code = String(error.code);
      if (CATALOGUE[code] === undefined) problems.push(`code ${code} is not in API.md's catalogue`);
      else if (CATALOGUE[code] !== status) problems.push(`code ${code} with status ${status}`);
      if (status === 429 && header(answer, 'retry-after') === undefined)
        problems.push('429 without Retry-After');
    }
  } else if (status >= 200 && status < 300 && status !== 204 && wire.method !== 'HEAD') {
    if (type.startsWith('application/json') && !BARE.has(ctx.template)) {
      let parsed: { success?: unknown; data?: unknown } | undefined;
      try {
        parsed = JSON.parse(text) as typeof parsed;
      } catch {
        parsed = undefined;
      }
      if (parsed?.success !== true || typeof parsed.data !== 'object')
        problems.push(`success without the envelope: ${text.slice(0, 200)}`);
    }
  }
  if (status === 204 && answer.body.length > 0) problems.push('204 with a body');

  // Nothing internal: in headers always, in bodies unless it is a static asset or page.
  const staticBody = status < 300 && /^text\/(html|javascript|css)/.test(type);
  const exposed = [
    ...[...answer.headers.entries()].map(([name, values]) => `${name}: ${values.join(', ')}`),
    ...(staticBody ? [] : [text]),
  ].join('\n');
  for (const [what, pattern] of LEAKS) {
    const found = pattern.exec(exposed);
    if (found)
      problems.push(
        `leaks ${what}: ${JSON.stringify(exposed.slice(Math.max(0, found.index - 60), found.index + 100))}`,
      );
  }

  // Security headers and the request id.
  const requestId = header(answer, 'x-request-id');
  if (requestId === undefined || !REQUEST_ID.test(requestId))
    problems.push(`X-Request-Id ${JSON.stringify(requestId)}`);
  // (A request the HTTP parser refuses never gets as far as its id: 400 with a fresh one.)
  else if (ctx.requestId !== undefined && requestId !== ctx.requestId && status !== 400)
    problems.push(`X-Request-Id not echoed: ${requestId}`);
  const expected: [string, RegExp][] = [
    ['x-content-type-options', /^nosniff$/],
    ['referrer-policy', /^no-referrer$/],
  ];
  if (!stream) {
    expected.push(['x-frame-options', /^DENY$/], ['content-security-policy', /frame-ancestors 'none'/]);
  } else {
    expected.push(['cache-control', /no-store/]);
  }
  for (const [name, pattern] of expected) {
    const value = header(answer, name);
    if (value === undefined || !pattern.test(value))
      problems.push(`header ${name}: ${JSON.stringify(value)}`);
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// The run.

interface Tally {
  sent: number;
  ok: number;
  byStatus: Map<number, number>;
}

async function discoverRoutes(fx: Fixtures): Promise<RouteInfo[]> {
  const answer = await send(fx.port, {
    method: 'GET',
    target: Buffer.from('/openapi.json'),
    version: 'HTTP/1.1',
    headers: [
      ['Host', fx.host],
      ['Connection', 'close'],
    ],
  });
  assert.ok(typeof answer !== 'string' && answer.status === 200, 'GET /openapi.json');
  const document = JSON.parse(answer.body.toString('utf8')) as {
    paths: Record<string, Record<string, { requestBody?: any; security?: unknown; 'x-roles'?: string[] }>>;
  };
  const routes: RouteInfo[] = [];
  for (const [template, operations] of Object.entries(document.paths)) {
    for (const [lower, operation] of Object.entries(operations)) {
      const method = lower.toUpperCase();
      const key = `${method} ${template}`;
      routes.push({
        method,
        template,
        key,
        bodySchema: operation.requestBody?.content?.['application/json']?.schema,
        session: operation.security !== undefined,
        roles: operation['x-roles'] ?? [],
        serial: SERIAL_ROUTES.has(key),
      });
    }
  }
  // Every route Fastify serves is in the document (HEAD is GET's twin).
  const table = fx.running.service.app.printRoutes({ commonPrefix: false });
  const served: string[] = [];
  const stack: string[] = [];
  for (const line of table.split('\n')) {
    // `├── /segment (GET, HEAD)`, indented 4 characters a level; a segment may have no methods.
    const match = /^([│ ]*)[├└]── (\S+)(?: \(([^)]+)\))?/.exec(line);
    if (!match?.[2]) continue;
    stack.length = (match[1] ?? '').length / 4;
    stack.push(match[2]);
    const path = stack.join('').replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    for (const method of match[3]?.split(', ') ?? []) if (method !== 'HEAD') served.push(`${method} ${path}`);
  }
  assert.ok(served.length >= routes.length, table);
  assert.deepEqual(
    served.filter((key) => !routes.some((route) => route.key === key)),
    [],
    'routes Fastify serves that /openapi.json does not list (the fuzzer would miss them)',
  );
  return routes;
}

async function pool<T>(items: readonly T[], width: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) {
        const item = items[next++];
        if (item !== undefined) await work(item);
      }
    }),
  );
}

function fuzzSuite(
  name: string,
  start: (logger: ServiceLogger) => Promise<RunningService>,
  options: { allow503: boolean },
): void {
  describe(`service fuzz: ${name}`, { timeout: 200_000 }, () => {
    let running: RunningService;
    let fx: Fixtures;
    const logged: string[] = [];
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown) => {
      uncaught.push(error);
    };

    before(async () => {
      process.on('uncaughtException', onUncaught);
      process.on('unhandledRejection', onUncaught);
      // Error-level log lines go here instead of stdout: the service's own logger, on a capture.
      const logger = createServiceLogger('error', {
        write: (line: string) => {
          logged.push(line);
        },
      });
      running = await start(logger);
      // The capture sees what request loggers (children) write.
      running.service.app.log.child({ probe: true }).error('service-fuzz: log capture');
      assert.equal(logged.length, 1, 'the log capture works');
      logged.length = 0;
      fx = await setUp(running);
    });
    after(async () => {
      process.off('uncaughtException', onUncaught);
      process.off('unhandledRejection', onUncaught);
      await running.close();
    });

    it('answers hostile requests to every route within the contract', async (t) => {
      const started = Date.now();
      const routes = await discoverRoutes(fx);
      t.diagnostic(`FUZZ_SEED=${SEED} FUZZ_ITERATIONS=${ITERATIONS} routes=${routes.length}`);
      const master = new Rng(SEED);
      const cases = routes.flatMap((route) =>
        Array.from({ length: ITERATIONS }, () => ({ route, seed: Math.floor(master.next() * 2 ** 32) })),
      );
      // Interleave the routes, reproducibly.
      for (let i = cases.length - 1; i > 0; i--) {
        const j = master.int(i + 1);
        [cases[i], cases[j]] = [cases[j] as (typeof cases)[number], cases[i] as (typeof cases)[number]];
      }
      const indexed = cases.map((item, index) => ({ ...item, index }));
      const selected = ONLY_CASE === undefined ? indexed : indexed.filter((item) => item.index === ONLY_CASE);
      const tallies = new Map<string, Tally>(
        routes.map((route) => [route.key, { sent: 0, ok: 0, byStatus: new Map() }]),
      );
      const problems: string[] = [];

      const run = async ({ route, seed, index }: (typeof indexed)[number]) => {
        const built = await buildCase(route, index, new Rng(seed), fx);
        const answer = await send(fx.port, built.wire);
        const tally = tallies.get(route.key);
        if (tally) tally.sent += 1;
        const report = (what: string) =>
          `case ${index} (${route.key}; ${built.notes.join('; ')}): ${what}\n    request: ${describeWire(built.wire)}`;
        if (typeof answer === 'string') {
          problems.push(report(answer));
          return;
        }
        if (tally) {
          tally.byStatus.set(answer.status, (tally.byStatus.get(answer.status) ?? 0) + 1);
          if (answer.status >= 200 && answer.status < 300 && built.wire.method === route.method)
            tally.ok += 1;
        }
        const found = check(answer, built.wire, {
          template: route.template,
          allow503: options.allow503,
          ...(built.requestId === undefined ? {} : { requestId: built.requestId }),
          ...(built.expect === undefined ? {} : { expect: built.expect }),
        });
        if (found.length > 0)
          problems.push(`${report(found.join('; '))}\n    answer: ${describeAnswer(answer)}`);
        if (route.key === 'POST /api/v1/public/forms/{id}/responses' && answer.status === 201) {
          const id = (JSON.parse(answer.body.toString('utf8')) as { data?: { response?: { id?: string } } })
            .data?.response?.id;
          if (id) fx.responses.push(id);
        }
        // Keep the edit lock's token for the next lock cases.
        if (built.formId !== undefined && answer.status === 200 && route.template.endsWith('/lock')) {
          const token = (JSON.parse(answer.body.toString('utf8')) as { data?: { lock?: { token?: string } } })
            .data?.lock?.token;
          if (token) fx.lockTokens.set(built.formId, token);
        }
      };
      await Promise.all([
        pool(
          selected.filter((item) => !item.route.serial),
          CONCURRENCY,
          run,
        ),
        pool(
          selected.filter((item) => item.route.serial),
          1,
          run,
        ),
      ]);

      const regressions = regressionCases(fx);
      for (const regression of regressions) {
        const answer = await send(fx.port, regression.wire);
        if (typeof answer === 'string') {
          problems.push(`regression "${regression.name}": ${answer}`);
          continue;
        }
        const found = check(answer, regression.wire, {
          template: regression.wire.target.toString('latin1'),
          allow503: false,
          ...(regression.expect ? { expect: regression.expect } : {}),
        });
        if (found.length > 0)
          problems.push(
            `regression "${regression.name}": ${found.join('; ')}\n    answer: ${describeAnswer(answer)}`,
          );
      }

      const total = [...tallies.values()].reduce((sum, tally) => sum + tally.sent, 0);
      const limited = [...tallies.values()].reduce((sum, tally) => sum + (tally.byStatus.get(429) ?? 0), 0);
      for (const [key, tally] of tallies) {
        const statuses = [...tally.byStatus.entries()]
          .sort(([a], [b]) => a - b)
          .map(([status, count]) => `${status}×${count}`);
        t.diagnostic(`${key}: ${tally.sent} sent, ${statuses.join(' ')}`);
      }
      t.diagnostic(
        `${total + regressions.length} requests in ${((Date.now() - started) / 1000).toFixed(1)} s, ${limited} rate-limited`,
      );
      if (problems.length > 0) {
        assert.fail(
          `FUZZ_SEED=${SEED}: ${problems.length} cases answered outside the contract (first 20):\n${problems.slice(0, 20).join('\n')}`,
        );
      }
      if (ONLY_CASE === undefined) {
        const unreached = [...tallies].filter(([, tally]) => tally.ok === 0).map(([key]) => key);
        assert.deepEqual(
          unreached,
          [],
          'routes that never answered 2xx: the fuzzer did not reach their handlers',
        );
        assert.ok(limited < total * 0.25, `${limited} of ${total} requests were rate-limited`);
      }
    });

    it('answers floods within the contract: the auth limit, the event streams of one session', async () => {
      const wire = (method: string, target: string, headers: Header[], body?: string): Wire => ({
        method,
        target: Buffer.from(target),
        version: 'HTTP/1.1',
        headers: [['Host', fx.host], ['Connection', 'close'], ...headers],
        ...(body === undefined ? {} : { body: Buffer.from(body) }),
      });
      const expectAnswer = async (request: Wire, template: string, expect: number[]) => {
        const answer = await send(fx.port, request);
        if (typeof answer === 'string') assert.fail(answer);
        assert.deepEqual(
          check(answer, request, { template, allow503: false, expect }),
          [],
          describeAnswer(answer),
        );
        return answer;
      };
      // Sign-in allows 7 at once per client address; bodies that fail validation still count.
      const signin = wire(
        'POST',
        '/api/v1/auth/signin',
        [
          ['X-Forwarded-For', '203.0.9.200'],
          ['Content-Type', 'application/json'],
        ],
        '{}',
      );
      for (let i = 0; i < 7; i++) await expectAnswer(signin, '/api/v1/auth/signin', [400]);
      await expectAnswer(signin, '/api/v1/auth/signin', [429]);
      // A session may hold 8 event streams on an instance; the 9th is refused with the envelope.
      const member = fx.quiet;
      const events = wire('GET', '/api/v1/events', [
        ['Authorization', `Bearer ${member.token}`],
        ['X-Forwarded-For', '203.0.9.201'],
      ]);
      const open = await Promise.all(Array.from({ length: 8 }, () => openStream(fx.port, events)));
      try {
        await expectAnswer(events, '/api/v1/events', [429]);
      } finally {
        for (const socket of open) socket.destroy();
      }
    });

    it('still answers, logged no error, and nothing was polluted', async () => {
      const health = await send(fx.port, {
        method: 'GET',
        target: Buffer.from('/health'),
        version: 'HTTP/1.1',
        headers: [
          ['Host', fx.host],
          ['Connection', 'close'],
        ],
      });
      if (typeof health === 'string') assert.fail(health);
      assert.equal(health.status, 200);
      assert.equal((JSON.parse(health.body.toString('utf8')) as { status: string }).status, 'healthy');
      const owner = new Client(fx.origin);
      owner.sessionToken = fx.members[0]?.token;
      assert.equal((await owner.get('/api/v1/me', { as: 'session-bearer' })).status, 200);
      assert.deepEqual(uncaught, []);
      assert.deepEqual(logged, [], 'error-level log lines');
      for (const prototype of [Object.prototype, Array.prototype, Function.prototype]) {
        for (const key of ['polluted', 'isAdmin', 'x']) {
          assert.equal(key in prototype, false, `${key} on a prototype`);
        }
      }
    });
  });
}

fuzzSuite('memory store, PGlite', (logger) => startService({ LOG_LEVEL: 'error' }, { logger }), {
  allow503: false,
});

describe('on standalone Redis', () => {
  let redis: Standalone;
  before(async () => {
    redis = await startStandalone();
  });
  after(async () => {
    await redis.destroy();
  });
  fuzzSuite(
    'standalone Redis, PGlite',
    (logger) =>
      startService(
        {
          LOG_LEVEL: 'error',
          REDIS_URL: `redis://127.0.0.1:${String(redis.server.port)}`,
          REDIS_KEY_PREFIX: uniquePrefix(),
        },
        { logger },
      ),
    // A store call may time out on a loaded machine: API.md's 503 is then the right answer.
    { allow503: true },
  );
});
