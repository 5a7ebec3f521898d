/**
 * The reference service: the healthcare-forms backend of ../API.md, assembled from gatehouse's
 * public API and its Fastify adapter. `createService` builds everything (store, database, routes)
 * and returns the Fastify app unstarted; `serve` in src/cli/main.ts listens and drains on SIGTERM.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';

import Fastify, { type FastifyError, type FastifyInstance, type FastifyRequest } from 'fastify';

import {
  createGatehouse,
  SqlSessionRepository,
  StoreUnavailableError,
  type Gatehouse,
  type RedisConnectionOptions,
} from 'gatehouse';
import { gatehouseFastify, refusalForError } from 'gatehouse/fastify';

import type { Config } from '../config.js';
import { createServiceLogger, type ServiceLogger } from '../logger.js';
import { AccessTokens } from './access-tokens.js';
import { AuditLog } from './audit.js';
import { migrate, openDatabase, type Database } from './db.js';
import { LiveEvents } from './events.js';
import { ServiceMetrics } from './metrics.js';
import { collectOpenApi, type OpenApiCollector } from './openapi.js';
import { PasswordVerifier } from './passwords.js';
import { createPdfRenderer, type PdfRenderer } from './pdf.js';
import { registerAuthRoutes, revokeAccessTokens } from './routes/auth.js';
import { registerFormRoutes } from './routes/forms.js';
import { registerOperationsRoutes } from './routes/operations.js';
import { registerSessionRoutes } from './routes/sessions.js';
import { sendError } from './schemas.js';

/** Everything a route needs; built once per service. */
export interface ServiceContext {
  readonly config: Config;
  readonly gh: Gatehouse;
  readonly db: Database;
  readonly audit: AuditLog;
  readonly accessTokens: AccessTokens;
  readonly passwords: PasswordVerifier;
  readonly pdf: PdfRenderer;
  readonly metrics: ServiceMetrics;
  readonly events: LiveEvents;
  readonly openApi: OpenApiCollector;
  readonly version: string;
  readonly startedAtMs: number;
}

export interface Service {
  readonly app: FastifyInstance;
  readonly context: ServiceContext;
  /** Stops taking requests, waits for those in flight, closes live streams, Redis and the database. */
  close(): Promise<void>;
}

export interface CreateServiceOptions {
  /** Secret keys when the configuration has none (development keys from DATA_DIR). */
  readonly secretKeys?: readonly Buffer[];
  /** A database to use instead of opening the configured one (tests). */
  readonly database?: Database;
  /** The log every line of the service goes to. Default: a new one at the configured level, on stdout. */
  readonly logger?: ServiceLogger;
  /** How long start-up waits for Redis before going on without it. Default 3 s. */
  readonly redisReadyTimeoutMs?: number;
}

/** Bodies over this are refused with 413 `PAYLOAD_TOO_LARGE`. */
export const BODY_LIMIT_BYTES = 1024 * 1024;
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;
/** On every answer (the CSP unless a route sets its own; HSTS too with secure cookies). */
const SECURITY_HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Content-Security-Policy': "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
} as const;
const HSTS = 'max-age=31536000; includeSubDomains';

export function serviceVersion(): string {
  try {
    const text = readFileSync(new URL('../../package.json', import.meta.url), 'utf8');
    const parsed = JSON.parse(text) as { version?: unknown };
    return typeof parsed.version === 'string' ? parsed.version : '0.0.0';
  } catch {
    return '0.0.0';
  }
}

export async function createService(config: Config, options: CreateServiceOptions = {}): Promise<Service> {
  const secretKeys = config.secretKeys ?? options.secretKeys;
  if (!secretKeys || secretKeys.length === 0) throw new TypeError('the service needs secret keys');
  const securityHeaders = {
    ...SECURITY_HEADERS,
    ...(config.cookieSecure ? { 'Strict-Transport-Security': HSTS } : {}),
  };
  const logger = options.logger ?? createServiceLogger(config.logLevel);
  const app = Fastify({
    bodyLimit: BODY_LIMIT_BYTES,
    // Errors Fastify meets before routing (a malformed URL, an over-long parameter) get the
    // envelope, the request id and the security headers too.
    frameworkErrors: (error, request, reply) => {
      const notFound = error.code === 'FST_ERR_MAX_PARAM_LENGTH';
      const body = JSON.stringify({
        success: false,
        error: notFound
          ? { code: 'NOT_FOUND', message: 'Not found.' }
          : { code: 'VALIDATION_ERROR', message: 'The request is malformed.' },
      });
      reply.raw
        .writeHead(notFound ? 404 : 400, {
          ...securityHeaders,
          'content-type': 'application/json; charset=utf-8',
          'x-request-id': request.id,
        })
        .end(body);
    },
    // So do requests Node's HTTP parser refuses (bytes that are not HTTP, headers over 16 KiB):
    // Fastify's default answer to them is a JSON of its own without either.
    clientErrorHandler: (error, socket) => {
      if (error.code === 'ECONNRESET' || socket.destroyed) return;
      const message =
        error.code === 'HPE_HEADER_OVERFLOW'
          ? 'The request headers are too large.'
          : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
            ? 'The request did not arrive in time.'
            : 'The request is malformed.';
      const body = JSON.stringify({ success: false, error: { code: 'VALIDATION_ERROR', message } });
      const head = Object.entries({
        ...securityHeaders,
        'Content-Type': 'application/json; charset=utf-8',
        'Content-Length': String(Buffer.byteLength(body)),
        'X-Request-Id': randomUUID(),
        Connection: 'close',
      }).map(([name, value]) => `${name}: ${value}\r\n`);
      if (socket.writable) socket.write(`HTTP/1.1 400 Bad Request\r\n${head.join('')}\r\n${body}`);
      socket.destroy(error);
    },
    // Node answers a request without Host (400) itself, bare; the hook below answers it instead.
    http: { requireHostHeader: false },
    genReqId: (request) => {
      const given = request.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    // Wrong types are refused, never coerced ("12" is not a number); unknown fields are kept
    // out of nothing, but no route reads them.
    ajv: { customOptions: { coerceTypes: false, allErrors: false } },
    loggerInstance: logger,
  });
  const openApi = collectOpenApi(app);
  const database = options.database ?? (await openDatabase(config.databaseUrl, config.dataDir));
  try {
    await migrate(database);
  } catch (error) {
    if (!options.database) await database.close();
    throw error;
  }
  const audit = new AuditLog(database, app.log);
  const metrics = new ServiceMetrics();
  const redis: RedisConnectionOptions | 'memory' =
    config.store.kind === 'memory' ? 'memory' : config.store.connection;
  const gh = await createGatehouse({
    redis,
    secretKeys,
    origin: `${config.cookieSecure ? 'https' : 'http'}://${originHost(config.host)}:${String(config.port)}`,
    trustedOrigins: config.trustedOrigins,
    keyPrefix: config.keyPrefix,
    logger: app.log,
    readyTimeout: options.redisReadyTimeoutMs ?? 3000,
    sessions: {
      idleTimeout: config.sessions.idleTimeoutMs,
      absoluteTimeout: config.sessions.absoluteTimeoutMs,
      maxPerUser: config.sessions.maxPerUser,
      ...(config.sessions.durable ? { repository: new SqlSessionRepository(database) } : {}),
      audit: (event) => {
        audit.record({
          type: event.type,
          outcome: 'info',
          userId: event.userId,
          sessionHash: event.sessionHash,
        });
      },
    },
    csrf: {
      sameHostOrigin: true,
      audit: (event) => {
        audit.record({ type: event.type, outcome: 'failure', details: { reason: event.reason } });
      },
    },
    nonces: {
      audit: (event) => {
        audit.record({ type: event.type, outcome: 'failure', details: { reason: event.reason } });
      },
    },
    locks: {
      audit: (event) => {
        if (event.type === 'lock.conflict') metrics.lockConflicts.inc();
        audit.record({
          type: event.type,
          outcome: event.type === 'lock.conflict' ? 'failure' : 'info',
          details: { resourceHash: event.resourceHash },
        });
      },
    },
    revocations: {
      audit: (event) => {
        audit.record({ type: event.type, outcome: 'info', userId: event.userId });
      },
    },
    rateLimits: {
      policies: Object.fromEntries(
        Object.entries(config.rateLimits).map(([name, policy]) => [name, { policy, whenStoreDown: 'open' }]),
      ),
      expectedInstances: config.expectedInstances,
    },
  });
  const accessTokens = new AccessTokens(gh.keyRing);
  const passwords = new PasswordVerifier();
  // Every instance hears every ended session (limit evictions, rotations, terminations), and puts
  // its access tokens on the revocation list for verifiers elsewhere (idempotent).
  const events = new LiveEvents(gh, app.log, (handle) => {
    void revokeAccessTokens(context, { handle }).catch(() => undefined);
  });
  const context: ServiceContext = {
    config,
    gh,
    db: database,
    audit,
    accessTokens,
    passwords,
    pdf: createPdfRenderer(config.gotenbergUrl),
    metrics,
    events,
    openApi,
    version: serviceVersion(),
    startedAtMs: Date.now(),
  };
  metrics.watch(context);

  app.addContentTypeParser(
    'application/json',
    { parseAs: 'string' },
    (() => {
      const parseJson = app.getDefaultJsonParser('error', 'error');
      // A body-less POST that still says application/json is a body-less POST.
      return (
        request: FastifyRequest,
        body: string | Buffer,
        done: (error: Error | null, value?: unknown) => void,
      ) => {
        if (body === '' || body.length === 0) {
          done(null, undefined);
          return;
        }
        void parseJson(request, body as string, (error: Error | null, value?: unknown) => {
          if (error) {
            done(error);
            return;
          }
          // Refused here, as bad input, before any route spends a nonce or writes anything.
          const problem = bodyProblem(value);
          if (problem !== null) {
            done(Object.assign(new Error(problem), { statusCode: 400 }));
            return;
          }
          done(null, value);
        });
      };
    })(),
  );

  // Node answers an `Expect` other than 100-continue with a bare 417 unless told otherwise:
  // the request is served as if it had none (RFC 9110 allows either).
  app.server.on('checkExpectation', (request, response) => {
    app.routing(request, response);
  });
  app.addHook('onRequest', (request, reply, done) => {
    // Set first, so every answer has them: a route may replace one (the dashboard's CSP), and an
    // event stream, written outside Fastify's reply, copies them.
    void reply.headers(securityHeaders);
    void reply.header('X-Request-Id', request.id);
    // HTTP/1.1 requires Host (RFC 9112, 3.2), and the CSRF checks compare Origin with it.
    if (request.headers.host === undefined && request.raw.httpVersion === '1.1') {
      sendError(reply, 400, 'VALIDATION_ERROR', 'The Host header is required.');
      return;
    }
    done();
  });
  app.addHook('onResponse', (request, reply, done) => {
    metrics.observeRequest(request, reply);
    if (reply.statusCode === 429) {
      audit.record({
        type: 'rate-limit.refused',
        outcome: 'failure',
        userId: request.session?.userId ?? null,
        requestId: request.id,
        details: { route: request.routeOptions.url ?? 'unmatched' },
      });
    }
    done();
  });

  await app.register(gatehouseFastify, {
    sessions: gh.sessions,
    csrf: gh.csrf,
    rateLimits: gh.rateLimits,
    nonces: gh.nonces,
    locks: gh.locks,
    secureCookies: config.cookieSecure,
    trustProxy: config.trustProxy,
    authenticateBearer: (token) => authenticateAccessToken(context, token),
  });
  // After the plugin's onRequest: count how each request was authenticated.
  app.addHook('onRequest', (request, reply, done) => {
    const auth = request.gatehouseAuth;
    metrics.sessionValidations.inc({
      outcome: !auth?.presented ? 'none' : auth.session ? 'valid' : 'invalid',
    });
    done();
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error.validation) {
      sendError(reply, 400, 'VALIDATION_ERROR', validationMessage(error));
      return;
    }
    const refused = refusalForError(error);
    if (refused.status >= 500) request.log.error({ err: error }, 'request failed');
    void reply.code(refused.status).headers(refused.headers).send(refused.body);
  });
  app.setNotFoundHandler((_request, reply) => {
    sendError(reply, 404, 'NOT_FOUND', 'Not found.');
  });

  registerAuthRoutes(app, context);
  registerSessionRoutes(app, context);
  registerFormRoutes(app, context);
  registerOperationsRoutes(app, context);
  events.register(app);

  await events.start();
  void passwords.warmUp();

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      events.closeAll('shutdown');
      await app.close();
      await gh.close();
      await audit.flush();
      metrics.stop();
      if (!options.database) await database.close();
    })();
    return closing;
  };
  return { app, context, close };
}

// eslint-disable-next-line no-control-regex -- NUL is exactly what this looks for
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const UNSTORABLE_MESSAGE = 'strings must be valid Unicode without NUL characters';

/** Bodies nested deeper than this are refused: no form or API body comes close. */
export const MAX_BODY_DEPTH = 64;

/**
 * What makes a parsed JSON body unfit to handle, or null: nesting deeper than MAX_BODY_DEPTH (a
 * deep body would overflow the stack of whatever walks it later), or a string or key holding NUL
 * or a lone surrogate, which PostgreSQL cannot store. A loop over a stack of its own, so any
 * depth gets an answer.
 */
export function bodyProblem(value: unknown): string | null {
  const pending: Array<{ value: unknown; depth: number }> = [{ value, depth: 0 }];
  while (pending.length > 0) {
    const next = pending.pop();
    if (next === undefined) break;
    if (typeof next.value === 'string') {
      if (UNSTORABLE.test(next.value)) return UNSTORABLE_MESSAGE;
      continue;
    }
    if (next.value === null || typeof next.value !== 'object') continue;
    const depth = next.depth + 1;
    if (depth > MAX_BODY_DEPTH) return `the body is nested deeper than ${String(MAX_BODY_DEPTH)} levels`;
    if (Array.isArray(next.value)) {
      // One at a time: spreading a long array into push() would overflow the stack too.
      for (const item of next.value as unknown[]) pending.push({ value: item, depth });
    } else {
      for (const [key, inner] of Object.entries(next.value)) {
        if (UNSTORABLE.test(key)) return UNSTORABLE_MESSAGE;
        pending.push({ value: inner, depth });
      }
    }
  }
  return null;
}

function originHost(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return 'localhost';
  return host.includes(':') ? `[${host}]` : host;
}

function validationMessage(error: FastifyError): string {
  const text = error.message.replace(/\s+/g, ' ').slice(0, 200);
  return text === '' ? 'The request is malformed.' : text;
}

/**
 * Access tokens as bearers: a signed, unexpired, unrevoked token whose session is still live
 * (validating the session also counts the use as its activity). Undefined for bearers that are
 * not JWTs, which are then tried as session tokens.
 */
async function authenticateAccessToken(context: ServiceContext, token: string) {
  if (!AccessTokens.looksLikeJwt(token)) return undefined;
  const claims = await context.accessTokens.verify(token);
  if (!claims) return { session: null, reason: null };
  // The session first: it is what makes a token live, and it validates from SQL in durable mode
  // while Redis is down.
  const result = await context.gh.sessions.validateHandle(claims.sid);
  if (!result.session) return result;
  if (result.session.userId !== claims.sub) return { session: null, reason: null };
  try {
    const revoked = await Promise.all([
      context.gh.revocations.isRevoked(claims.jti),
      context.gh.revocations.isRevoked(`sid:${claims.sid}`),
    ]);
    if (revoked.some(Boolean)) return { session: null, reason: null };
  } catch (error) {
    // Redis is down: the live session (from SQL, with its tombstones) decides alone.
    if (!(error instanceof StoreUnavailableError)) throw error;
  }
  return result;
}
