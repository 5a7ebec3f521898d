/**
 * The reference service: the healthcare-forms backend whose HTTP contract is docs/http-api.md,
 * assembled from gatehouse's public API and its Fastify adapter. `createService` builds
 * everything (store, database, routes) and returns the Fastify app unstarted; `gatehouse serve`
 * (packages/server/src/cli/serve.ts) listens and drains on SIGTERM.
 *
 * What each route works with is the `ServiceContext` (packages/server/src/service/context.ts);
 * the routes themselves are in packages/server/src/service/routes/.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';

import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';

import {
  createGatehouse,
  ipRateLimitGroup,
  SqlSessionRepository,
  type RedisConnectionOptions,
} from 'gatehouse';
import { gatehouseFastify, nodeRequestView, refusal, refusalForError } from 'gatehouse/fastify';

import type { Config } from '../config.js';
import { createServiceLogger, type ServiceLogger } from '../logger.js';
import { AccessTokens } from './access-tokens.js';
import { AuditLog } from './audit.js';
import type { ServiceContext } from './context.js';
import { migrate, openDatabase, type Database } from './db.js';
import { LiveEvents } from './events.js';
import { registerJsonBodyParser } from './json-body.js';
import { ServiceMetrics } from './metrics.js';
import { collectOpenApi } from './openapi.js';
import { PasswordVerifier } from './passwords.js';
import { createPdfRenderer } from './pdf.js';
import { RateLimitRefusals, refusingPolicy } from './rate-limit-refusals.js';
import { sendHttpRefusal, sendRefusal } from './replies.js';
import { registerAuthRoutes } from './routes/auth.js';
import { registerFormRoutes } from './routes/forms.js';
import { registerOperationsRoutes } from './routes/operations.js';
import { registerOrganizationRoutes } from './routes/organizations.js';
import { registerSessionRoutes } from './routes/sessions.js';
import { authenticateAccessToken, revokeAccessTokens } from './session-access-tokens.js';

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
  /** The least time between two `audit anchor` log lines (tests). Default a minute. */
  readonly auditAnchorIntervalMs?: number;
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
      const refused =
        error.code === 'FST_ERR_MAX_PARAM_LENGTH'
          ? refusal('NOT_FOUND', 'Not found.')
          : refusal('VALIDATION_ERROR', 'The request is malformed.');
      reply.raw
        .writeHead(refused.status, {
          ...securityHeaders,
          'cache-control': 'no-store',
          'content-type': 'application/json; charset=utf-8',
          'x-request-id': request.id,
        })
        .end(JSON.stringify(refused.body));
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
      const body = JSON.stringify(refusal('VALIDATION_ERROR', message).body);
      const head = Object.entries({
        ...securityHeaders,
        'Cache-Control': 'no-store',
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
    // Every request gets the service's own id (X-Request-Id, audit rows). A client's id is only
    // written beside it, on the request's log lines, when well-formed: a client must not choose
    // what the audit trail calls its request, nor write arbitrary text into the log.
    genReqId: () => randomUUID(),
    childLoggerFactory: (parent, bindings, childOptions, rawRequest) => {
      const given = rawRequest.headers['x-request-id'];
      const clientRequestId = typeof given === 'string' && REQUEST_ID.test(given) ? given : undefined;
      return parent.child(
        clientRequestId === undefined ? bindings : { ...bindings, clientRequestId },
        childOptions,
      );
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
  // After gh, whose key ring keys the chain: gh's audit hooks above run on requests only.
  const audit = new AuditLog(database, app.log, {
    keyRing: gh.keyRing,
    ...(options.auditAnchorIntervalMs === undefined
      ? {}
      : { anchorIntervalMs: options.auditAnchorIntervalMs }),
  });
  const rateLimitRefusals = new RateLimitRefusals({ audit });
  const accessTokens = new AccessTokens(gh.keyRing, {
    issuer: config.accessTokens.issuer,
    audience: config.accessTokens.audience,
  });
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

  registerJsonBodyParser(app);

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
    // Nothing under /api/ may be kept by a shared cache: a public form page carries a single-use
    // nonce, every other answer is someone's data. Set before routing, so refusals carry it too.
    if (request.url.startsWith('/api/')) void reply.header('Cache-Control', 'no-store');
    // HTTP/1.1 requires Host (RFC 9112, 3.2), and the CSRF checks compare Origin with it.
    if (request.headers.host === undefined && request.raw.httpVersion === '1.1') {
      sendRefusal(reply, 'VALIDATION_ERROR', 'The Host header is required.');
      return;
    }
    done();
  });
  app.addHook('onResponse', (request, reply, done) => {
    metrics.observeRequest(request, reply);
    if (reply.statusCode === 429) {
      const userId = request.session?.userId ?? null;
      rateLimitRefusals.count({
        policy: refusingPolicy(reply.getHeader('RateLimit')),
        userId,
        // Only for requests without a user: the address as the limits count it (an IPv6 client by
        // its /64), keyed, so the address itself never reaches the audit trail.
        ipHash:
          userId === null
            ? gh.keyRing.identifier(
                'audit.ip',
                ipRateLimitGroup(app.gatehouse.clientIp(nodeRequestView(request.raw))),
                22,
              )
            : null,
        requestId: request.id,
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
    // Before any SQL query or signature check: a flood of made-up credentials from one address
    // is answered 429 once the policy is spent, at no cost to the database.
    anonymousPolicy: 'anonymous',
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
      sendRefusal(reply, 'VALIDATION_ERROR', validationMessage(error));
      return;
    }
    const refused = refusalForError(error);
    if (refused.status >= 500) request.log.error({ err: error }, 'request failed');
    void sendHttpRefusal(reply, refused);
  });
  app.setNotFoundHandler((_request, reply) => {
    sendRefusal(reply, 'NOT_FOUND', 'Not found.');
  });

  registerAuthRoutes(app, context);
  registerOrganizationRoutes(app, context);
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
      rateLimitRefusals.close();
      await gh.close();
      await audit.close();
      metrics.stop();
      if (!options.database) await database.close();
    })();
    return closing;
  };
  return { app, context, close };
}

function originHost(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return 'localhost';
  return host.includes(':') ? `[${host}]` : host;
}

function validationMessage(error: FastifyError): string {
  const text = error.message.replace(/\s+/g, ' ').slice(0, 200);
  return text === '' ? 'The request is malformed.' : text;
}
