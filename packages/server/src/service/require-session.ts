/** The session of a request, for the routes that require one. */
import type { FastifyRequest } from 'fastify';

import type { Session } from 'gatehouse';

/** The session of a route that requires one (the plugin has refused the request otherwise). */
export function requireSession(request: FastifyRequest): Session {
  if (!request.session) throw new Error('route reached without a session');
  return request.session;
}
