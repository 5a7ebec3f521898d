// Typed usage of gatehouse/fastify, compiled by packages/gatehouse/test/package/types.test.ts: no casts needed, and the
// session is `Session | null`, never `any`.
import type { FastifyInstance } from 'fastify';
import type { Session } from 'gatehouse';
import { gatehouseFastify } from 'gatehouse/fastify';

export function routes(app: FastifyInstance, options: Parameters<typeof gatehouseFastify>[1]): void {
  void app.register(gatehouseFastify, options);
  app.get(
    '/me',
    { config: { gatehouse: { session: 'required', roles: ['admin'], rateLimit: ['api'] } } },
    (request) => {
      const session: Session | null = request.session;
      const userId: string | undefined = request.session?.userId;
      // @ts-expect-error the session may be null
      const unchecked: string = request.session.userId;
      const fence: number | undefined = request.gatehouseLock?.fencingToken;
      return { session, userId, unchecked, fence, guard: app.gatehouse.cookieName };
    },
  );
  // @ts-expect-error a requirement takes only the documented values
  app.get('/bad', { config: { gatehouse: { session: 'sometimes' } } }, () => ({}));
}
