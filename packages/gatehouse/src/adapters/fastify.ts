/**
 * gatehouse for Fastify 5: a plugin that attaches the session to every request
 * (`request.session`, typed) and applies each route's `config.gatehouse` requirements: session,
 * roles, rate limits, CSRF, nonces and locks. It only translates between Fastify and HttpGuard,
 * where every decision is made.
 *
 * ```ts
 * await app.register(gatehouseFastify, { sessions, csrf, rateLimits, nonces, locks });
 * app.get('/api/v1/me', { config: { gatehouse: { session: 'required', rateLimit: 'api' } } }, (request) => ({
 *   user: request.session?.userId,
 * }));
 * ```
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fastifyPlugin from 'fastify-plugin';

import { refusalForError, type HttpRefusal } from '../http/envelope.js';
import {
  HttpGuard,
  nodeRequestView,
  type AdmissionRoute,
  type Authentication,
  type HeldRouteLock,
  type HttpGuardOptions,
  type HttpRequestView,
} from '../http/guard.js';
import type { Lock } from '../locks/locks.js';
import type { Session } from '../sessions/sessions.js';
import type { Duration } from '../util/duration.js';

/** A route's `config.gatehouse`. */
export interface FastifyRouteGuard extends AdmissionRoute {
  /** Spend a single-use nonce before the handler: 409 `NONCE_INVALID` when it is not good. */
  readonly nonce?: {
    readonly purpose: (request: FastifyRequest) => string;
    /** Where the nonce is. Default: the body's `nonce` field. */
    readonly from?: (request: FastifyRequest) => unknown;
  };
  /** Hold a lock while the handler runs: 409 `LOCKED` with `Retry-After` when another holds it. */
  readonly lock?: {
    readonly resource: (request: FastifyRequest) => string;
    /** Renewed every third of it while the handler works. Default: the Locks `ttl`. */
    readonly ttl?: Duration;
    readonly wait?: Duration;
    /** Renewals stop after this long. Default: the Locks `maxHold`. */
    readonly maxHold?: Duration;
  };
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The request's session, or null. */
    session: Session | null;
    /** How the request was authenticated. */
    gatehouseAuth: Authentication | null;
    /** The lock taken for the route (`config.gatehouse.lock`), with its fencing token. */
    gatehouseLock: Lock | null;
  }
  interface FastifyContextConfig {
    gatehouse?: FastifyRouteGuard;
  }
  interface FastifyInstance {
    gatehouse: HttpGuard;
  }
}

export type GatehouseFastifyOptions = HttpGuardOptions;

/** The keys of `config.gatehouse` beyond the guard's own RouteRequirements. */
const FASTIFY_ROUTE_KEYS: readonly (keyof FastifyRouteGuard)[] = ['authenticate', 'nonce', 'lock'];

function view(request: FastifyRequest): HttpRequestView {
  return nodeRequestView(request.raw);
}

function send(reply: FastifyReply, refused: HttpRefusal): void {
  void reply.code(refused.status).headers(refused.headers).send(refused.body);
}

function bodyNonce(request: FastifyRequest): unknown {
  const body: unknown = request.body;
  return typeof body === 'object' && body !== null ? (body as Record<string, unknown>).nonce : undefined;
}

function gatehousePlugin(app: FastifyInstance, options: GatehouseFastifyOptions): Promise<void> {
  const guard = new HttpGuard(options);
  app.decorate('gatehouse', guard);
  app.decorateRequest('session', null);
  app.decorateRequest('gatehouseAuth', null);
  app.decorateRequest('gatehouseLock', null);
  // Each route's requirements are checked as the route is added: a mistake stops start-up,
  // naming the route, instead of answering 500 (or nothing) at request time.
  app.addHook('onRoute', (route) => {
    const methods = (Array.isArray(route.method) ? route.method : [route.method]).map((method) =>
      method.toUpperCase(),
    );
    guard.checkDefinition(route.config?.gatehouse, `route ${methods.join(',')} ${route.url}`, {
      extraKeys: FASTIFY_ROUTE_KEYS,
      methods,
    });
  });
  /** Route locks being renewed, until the handler has answered. */
  const heldLocks = new WeakMap<FastifyRequest, HeldRouteLock>();

  app.addHook('onRequest', async (request, reply) => {
    let refused: HttpRefusal | null;
    try {
      const admission = await guard.admit(view(request), request.routeOptions.config.gatehouse ?? {});
      request.session = admission.authentication.session;
      request.gatehouseAuth = admission.authentication;
      reply.headers(admission.headers);
      refused = admission.refusal;
    } catch (error) {
      request.log.error({ err: error }, 'gatehouse could not check the request');
      refused = refusalForError(error);
    }
    // Fastify stops here only when an async hook that replied returns the reply.
    if (refused) {
      send(reply, refused);
      return reply;
    }
    return undefined;
  });

  app.addHook('preHandler', async (request, reply) => {
    const route = request.routeOptions.config.gatehouse;
    if (!route?.nonce && !route?.lock) return undefined;
    let refused: HttpRefusal | null;
    try {
      const { lock, nonce } = route;
      const admitted = await guard.admitBody({
        ...(lock ? { lock: { ...lock, resource: lock.resource(request) } } : {}),
        ...(nonce
          ? {
              nonce: {
                purpose: nonce.purpose(request),
                value: nonce.from ? nonce.from(request) : bodyNonce(request),
              },
            }
          : {}),
      });
      if (admitted.lock) {
        heldLocks.set(request, admitted.lock);
        request.gatehouseLock = admitted.lock.lock;
      }
      refused = admitted.refusal;
    } catch (error) {
      request.log.error({ err: error }, 'gatehouse could not check the request');
      refused = refusalForError(error);
    }
    // Fastify stops here only when an async hook that replied returns the reply.
    if (refused) {
      send(reply, refused);
      return reply;
    }
    return undefined;
  });

  // The handler has answered (or failed) when onSend runs, also after the client went away,
  // when onResponse never comes. The lock is released once the response is out (streams
  // included), or at once when there is no one left to send it to.
  app.addHook('onSend', async (request, reply, payload) => {
    const lock = heldLocks.get(request);
    if (!lock) return payload;
    heldLocks.delete(request);
    const release = () => {
      lock.release().catch((error: unknown) => {
        request.log.warn({ err: error }, 'gatehouse could not release a lock; it expires by its TTL');
      });
    };
    if (request.raw.destroyed || reply.raw.destroyed) release();
    else reply.raw.once('close', release);
    return payload;
  });
  return Promise.resolve();
}

/**
 * An error handler answering with the envelope: 503 for store outages, 409 LOCKED for a held
 * `withLock`, 400/413 for bodies Fastify refused, and a 500 that says nothing about the cause
 * (logged). `app.setErrorHandler(gatehouseErrorHandler)`.
 */
export function gatehouseErrorHandler(error: unknown, request: FastifyRequest, reply: FastifyReply): void {
  const refused = refusalForError(error);
  if (refused.status >= 500) request.log.error({ err: error }, 'request failed');
  send(reply, refused);
}

/** The plugin: `app.register(gatehouseFastify, { sessions, csrf, rateLimits, nonces, locks })`. */
export const gatehouseFastify = fastifyPlugin(gatehousePlugin, { fastify: '5.x', name: 'gatehouse' });
export default gatehouseFastify;

export {
  HttpGuard,
  nodeRequestView,
  type Admission,
  type AdmissionRoute,
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
