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
  /** Attaches `req.session` to every request (401s are for `protect`). */
  authenticate(): RequestHandler;
  /** A route's requirements: session or roles (401, 403), rate limits (429), CSRF (403). */
  protect(requirements?: RouteRequirements): RequestHandler;
  /** Spends a single-use nonce (default: `req.body.nonce`): 409 `NONCE_INVALID` when it is not good. */
  nonce(purpose: (req: Request) => string, from?: (req: Request) => unknown): RequestHandler;
  /** Holds a lock until the response is sent: 409 `LOCKED` with `Retry-After` when another holds it. */
  lock(resource: (req: Request) => string, options?: { ttl?: Duration; wait?: Duration }): RequestHandler;
  /** Sets the session cookie for a new session (after sign-in or rotation). */
  setSessionCookie(res: Response, token: string, session: Session): void;
  /** Ends the request's session everywhere and clears it in the browser (cookie, Clear-Site-Data). */
  signOut(req: Request, res: Response): Promise<void>;
}

function view(req: Request): HttpRequestView {
  return {
    method: req.method,
    header: (name) => {
      const value = req.headers[name];
      return Array.isArray(value) ? value[0] : value;
    },
    socketAddress: req.socket.remoteAddress,
  };
}

function send(res: Response, refused: HttpRefusal): void {
  res.status(refused.status).set(refused.headers).json(refused.body);
}

function bodyNonce(req: Request): unknown {
  const body: unknown = req.body;
  return typeof body === 'object' && body !== null ? (body as Record<string, unknown>).nonce : undefined;
}

export function gatehouseExpress(options: GatehouseExpressOptions): GatehouseExpress {
  const guard = new HttpGuard(options);
  const logger = options.logger ?? createConsoleLogger('warn');

  /** Runs an async middleware body; any error becomes the envelope (503 for store outages). */
  function handler(body: (req: Request, res: Response) => Promise<HttpRefusal | null>): RequestHandler {
    return (req: Request, res: Response, next: NextFunction) => {
      body(req, res).then(
        (refused) => {
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

  async function authenticated(req: Request): Promise<Authentication> {
    if (req.gatehouseAuth) return req.gatehouseAuth;
    const auth = await guard.authenticate(view(req));
    req.session = auth.session;
    req.gatehouseAuth = auth;
    return auth;
  }

  return {
    guard,
    authenticate: () =>
      handler(async (req) => {
        await authenticated(req);
        return null;
      }),
    protect: (requirements = {}) =>
      handler(async (req, res) => {
        const auth = await authenticated(req);
        const checked = await guard.checkRoute(view(req), auth, requirements);
        res.set(checked.headers);
        return checked.refusal;
      }),
    nonce: (purpose, from) =>
      handler((req) => guard.consumeNonce(purpose(req), from ? from(req) : bodyNonce(req))),
    lock: (resource, lockOptions = {}) =>
      handler(async (req, res) => {
        const taken = await guard.acquireLock(resource(req), lockOptions);
        if (taken.refusal) return taken.refusal;
        const lock = taken.lock;
        req.gatehouseLock = lock;
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
        res.once('finish', release);
        res.once('close', release);
        return null;
      }),
    setSessionCookie: (res, token, session) => {
      res.append('Set-Cookie', guard.sessionCookie(token, session));
    },
    signOut: async (req, res) => {
      const headers = await guard.signOut(await authenticated(req));
      res.set(headers);
    },
  };
}

export {
  HttpGuard,
  type Authentication,
  type HttpGuardOptions,
  type RouteRequirements,
} from '../http/guard.js';
export {
  refusal,
  refusalForError,
  type ErrorEnvelope,
  type HttpErrorCode,
  type HttpRefusal,
} from '../http/envelope.js';
