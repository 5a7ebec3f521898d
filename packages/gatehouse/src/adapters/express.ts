/**
 * gatehouse for Express 4 and 5: middleware factories that attach the session to every request
 * (`req.session`, typed) and apply a route's requirements: session, roles, rate limits, CSRF,
 * nonces and locks. They only translate between Express and HttpGuard, where every decision is
 * made. Every middleware handles its own errors (Express 4 does not catch rejected promises).
 *
 * ```ts
 * const gh = gatehouseExpress({ sessions, csrf, rateLimits, nonces, locks });
 * app.use(express.json(), gh.authenticate());
 * app.get('/api/v1/me', gh.protect({ session: 'required', rateLimit: 'api' }), (req, res) => {
 *   res.json({ success: true, data: { userId: req.session?.userId } });
 * });
 * ```
 *
 * `req.session` is gatehouse's session here: do not mount express-session in the same app.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';

import { refusalForError, type HttpRefusal } from '../http/envelope.js';
import {
  HttpGuard,
  nodeRequestView,
  type Admission,
  type Authentication,
  type HttpGuardOptions,
  type HttpRequestView,
  type RouteRequirements,
} from '../http/guard.js';
import type { Lock } from '../locks/locks.js';
import type { Session } from '../sessions/sessions.js';
import type { Duration } from '../util/duration.js';
import { createConsoleLogger, type Logger } from '../util/logger.js';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace -- Express types its request through this namespace.
  namespace Express {
    interface Request {
      /** The request's session, or null (set by `authenticate()` or `protect()`). */
      session: Session | null;
      /** How the request was authenticated. */
      gatehouseAuth: Authentication | null;
      /** The lock taken by `lock()`, with its fencing token. */
      gatehouseLock: Lock | null;
    }
  }
}

export interface GatehouseExpressOptions extends HttpGuardOptions {
  /** Where failures to check a request or release a lock go. Default: warnings and errors to the console. */
  readonly logger?: Logger;
}

export interface GatehouseExpress {
  readonly guard: HttpGuard;
  /**
   * Attaches `req.session` to every request (401s are for `protect`) and checks CSRF on every
   * cookie-authenticated unsafe request (403 `CSRF_INVALID`); `{ csrf: false }` leaves that to
   * `protect()` on each route. With an `anonymousPolicy`, a credential from a client IP that
   * policy refused a moment ago is not validated here: `req.session` stays null and the route's
   * `protect()` decides (429 when it needs a session).
   */
  authenticate(options?: { csrf?: boolean }): RequestHandler;
  /**
   * A route's requirements: session or roles (401, 403), rate limits (429), CSRF (403). It
   * authenticates the request itself when `authenticate()` has not (one store round trip for
   * session and rate limit, as the Fastify plugin); after `authenticate()` it reuses that session.
   */
  protect(requirements?: RouteRequirements): RequestHandler;
  /** Spends a single-use nonce (default: `req.body.nonce`): 409 `NONCE_INVALID` when it is not good. */
  nonce(purpose: (req: Request) => string, from?: (req: Request) => unknown): RequestHandler;
  /**
   * Holds a lock until the handler has answered (`res.end`), even when the client leaves first:
   * 409 `LOCKED` with `Retry-After` when another holds it. Mount it before `nonce()`, so that a
   * request refused for the lock keeps its nonce.
   */
  lock(
    resource: (req: Request) => string,
    options?: { ttl?: Duration; wait?: Duration; maxHold?: Duration },
  ): RequestHandler;
  /**
   * An error middleware answering with the envelope: 503 for store outages, 409 LOCKED for a held
   * `withLock`, 400/413 for bodies express.json() refused, and a 500 that says nothing about the
   * cause (logged). Mount it last.
   */
  errorHandler(): (error: unknown, req: Request, res: Response, next: NextFunction) => void;
  /** Sets the session cookie for a new session (after sign-in or rotation). */
  setSessionCookie(res: Response, token: string, session: Session): void;
  /** Ends the request's session everywhere and clears it in the browser (cookie, Clear-Site-Data). */
  signOut(req: Request, res: Response): Promise<void>;
}

function view(req: Request): HttpRequestView {
  return nodeRequestView(req);
}

function send(res: Response, refused: HttpRefusal): void {
  res.status(refused.status).set(refused.headers).json(refused.body);
}

function bodyNonce(req: Request): unknown {
  const body: unknown = req.body;
  return typeof body === 'object' && body !== null ? (body as Record<string, unknown>).nonce : undefined;
}

/** Authentication only: what `signOut` needs when no middleware authenticated the request. */
const NO_CSRF_CHECK: RouteRequirements = { csrf: false };

export function gatehouseExpress(options: GatehouseExpressOptions): GatehouseExpress {
  const guard = new HttpGuard(options);
  const logger = options.logger ?? createConsoleLogger('warn');

  /**
   * Runs an async middleware body; any error becomes the envelope (503 for store outages). The
   * body answers a refusal to send, null to go on, or 'stop' when there is no one to answer.
   */
  function handler(
    body: (req: Request, res: Response) => Promise<HttpRefusal | null | 'stop'>,
  ): RequestHandler {
    return (req: Request, res: Response, next: NextFunction) => {
      body(req, res).then(
        (refused) => {
          if (refused === 'stop') return;
          if (refused) send(res, refused);
          else next();
        },
        (error: unknown) => {
          logger.error({ error: String(error) }, 'gatehouse could not check the request');
          send(res, refusalForError(error));
        },
      );
    };
  }

  /** Each request's admission so far (by `authenticate()` or `protect()`), handed to the next. */
  const admissions = new WeakMap<Request, Admission>();

  async function admit(req: Request, res: Response, route: RouteRequirements): Promise<Admission> {
    return attach(req, res, await guard.admit(view(req), route, admissions.get(req)));
  }

  function attach(req: Request, res: Response, admission: Admission): Admission {
    admissions.set(req, admission);
    req.session = admission.authentication.session;
    req.gatehouseAuth = admission.authentication;
    res.set(admission.headers);
    return admission;
  }

  return {
    guard,
    // Every cookie-authenticated unsafe request is checked here (unless `csrf: false`), so a
    // route without `protect()` is not left open to CSRF.
    // The route is not known yet: a credential from a client IP the anonymous limit refused a
    // moment ago is left for protect() to decide (see HttpGuard.admitBeforeRoute).
    authenticate: (authenticateOptions = {}) => {
      const options = { csrf: authenticateOptions.csrf !== false };
      return handler(
        async (req, res) => attach(req, res, await guard.admitBeforeRoute(view(req), options)).refusal,
      );
    },
    protect: (requirements = {}) => {
      guard.checkDefinition(requirements, 'protect()');
      return handler(async (req, res) => (await admit(req, res, requirements)).refusal);
    },
    nonce: (purpose, from) => {
      guard.checkNonceDefinition(purpose, from, 'nonce()');
      return handler((req) => guard.consumeNonce(purpose(req), from ? from(req) : bodyNonce(req)));
    },
    lock: (resource, lockOptions = {}) => {
      guard.checkLockDefinition(resource, lockOptions, 'lock()');
      return handler(async (req, res) => {
        const taken = await guard.acquireLock(resource(req), lockOptions);
        if (taken.refusal) return taken.refusal;
        const lock = taken.lock;
        let released = false;
        const release = () => {
          if (released) return;
          released = true;
          lock.release().catch((error: unknown) => {
            logger.warn(
              { error: String(error) },
              'gatehouse could not release a lock; it expires by its TTL',
            );
          });
        };
        // The client left while the lock was being taken: give it back and do nothing more.
        if (req.socket.destroyed || res.destroyed) {
          release();
          return 'stop';
        }
        req.gatehouseLock = lock.lock;
        // Released when the handler has answered: `res.end` is its last step, and a client that
        // leaves early ('close') does not free the lock while the handler still works.
        const end = res.end.bind(res) as (...args: unknown[]) => Response;
        res.end = ((...args: unknown[]) => {
          const result = end(...args);
          release();
          return result;
        }) as Response['end'];
        return null;
      });
    },
    errorHandler: () => (error: unknown, req: Request, res: Response, next: NextFunction) => {
      if (res.headersSent) {
        next(error);
        return;
      }
      const refused = refusalForError(error);
      if (refused.status >= 500) logger.error({ error: String(error) }, 'request failed');
      send(res, refused);
    },
    setSessionCookie: (res, token, session) => {
      res.append('Set-Cookie', guard.sessionCookie(token, session));
    },
    signOut: async (req, res) => {
      const previous = admissions.get(req);
      // A deferred admission validated nothing: the session to end is found now.
      const admission = previous && !previous.deferred ? previous : await admit(req, res, NO_CSRF_CHECK);
      const headers = await guard.signOut(admission.authentication);
      res.set(headers);
    },
  };
}

export {
  HttpGuard,
  type Admission,
  type Authentication,
  type HttpGuardOptions,
  type RateLimitAnswer,
  type RouteRequirements,
} from '../http/guard.js';
export {
  HTTP_ERROR_STATUS,
  refusal,
  refusalForError,
  type ErrorEnvelope,
  type HttpErrorCode,
  type HttpRefusal,
} from '../http/envelope.js';
