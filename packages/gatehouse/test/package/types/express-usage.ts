// Typed usage of gatehouse/express, compiled by packages/gatehouse/test/package/types.test.ts: no casts needed, and the
// session is `Session | null`, never `any`.
import express from 'express';
import type { Session } from 'gatehouse';
import { gatehouseExpress, type GatehouseExpressOptions } from 'gatehouse/express';

export function routes(options: GatehouseExpressOptions): express.Express {
  const gh = gatehouseExpress(options);
  const app = express();
  app.use(gh.authenticate());
  app.get('/me', gh.protect({ session: 'required' }), (req, res) => {
    const session: Session | null = req.session;
    const userId: string | undefined = req.session?.userId;
    // @ts-expect-error the session may be null
    const unchecked: string = req.session.userId;
    res.json({ session, userId, unchecked, fence: req.gatehouseLock?.fencingToken });
  });
  // @ts-expect-error an unknown requirement is refused
  app.get('/bad', gh.protect({ sesion: 'required' }));
  return app;
}
