/**
 * The checks every answer gets, whatever the case: no 5xx but an allowed 503, the statuses the
 * case expects, the error envelope with a code of the catalogue (./oracle-catalogue.ts) and that
 * code's status, the success envelope, nothing internal leaked, the security headers and the
 * request id.
 */
import { ERROR_CATALOGUE } from './oracle-catalogue.js';
import { isRecord } from './json-bodies.js';
import { header, type Answer, type Wire } from './raw-http.js';

/** The service's own request ids: UUIDs, whatever the client sent. */
const REQUEST_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

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

/** Operations routes answer bare (no envelope) when they succeed; /ready's 503 is bare too. */
const BARE = new Set(['/health', '/ready', '/metrics', '/openapi.json', '/.well-known/jwks.json']);

export interface CheckContext {
  readonly template: string;
  readonly allow503: boolean;
  readonly requestId?: string;
  readonly expect?: readonly number[];
}

export function check(answer: Answer, wire: Wire, ctx: CheckContext): string[] {
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
      if (ERROR_CATALOGUE[code] === undefined)
        problems.push(`code ${code} is not in the catalogue of the HTTP contract`);
      else if (ERROR_CATALOGUE[code] !== status) problems.push(`code ${code} with status ${status}`);
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
  else if (ctx.requestId !== undefined && requestId === ctx.requestId)
    problems.push(`X-Request-Id echoes the client's: ${requestId}`);
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
