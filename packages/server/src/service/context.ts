/**
 * What every route of the reference service works with, built once per service by
 * `createService` (packages/server/src/service/app.ts) and handed to each route module. The route
 * modules import this file, never app.ts: app.ts assembles them, they do not know it.
 */
import type { Gatehouse } from 'gatehouse';

import type { Config } from '../config.js';
import type { AccessTokens } from './access-tokens.js';
import type { AuditLog } from './audit.js';
import type { Database } from './db.js';
import type { LiveEvents } from './events.js';
import type { ServiceMetrics } from './metrics.js';
import type { OpenApiCollector } from './openapi.js';
import type { PasswordVerifier } from './passwords.js';
import type { PdfRenderer } from './pdf.js';

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
