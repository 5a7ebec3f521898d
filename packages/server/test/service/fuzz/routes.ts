/**
 * The routes the fuzzer sends to: every route /openapi.json lists, checked against Fastify's
 * route table so that none is missed, with what the document says of its body, session and roles.
 */
import assert from 'node:assert/strict';

import type { Fixtures } from './fixtures.js';
import { send } from './raw-http.js';

export interface RouteInfo {
  readonly method: string;
  /** The OpenAPI path, `/api/v1/forms/{id}`. */
  readonly template: string;
  readonly key: string;
  readonly bodySchema: unknown;
  readonly session: boolean;
  readonly roles: readonly string[];
  readonly serial: boolean;
}

/** Routes that end sessions or move the edit lock: one request at a time, on their own users. */
const SERIAL_ROUTES = new Set([
  'POST /api/v1/auth/signin',
  'POST /api/v1/auth/signout',
  'DELETE /api/v1/sessions',
  'DELETE /api/v1/sessions/{id}',
  'POST /admin/api/sessions/{handle}/terminate',
  'POST /api/v1/forms/{id}/lock',
  'DELETE /api/v1/forms/{id}/lock',
  'PUT /api/v1/forms/{id}',
]);

export async function discoverRoutes(fx: Fixtures): Promise<RouteInfo[]> {
  const answer = await send(fx.port, {
    method: 'GET',
    target: Buffer.from('/openapi.json'),
    version: 'HTTP/1.1',
    headers: [
      ['Host', fx.host],
      ['Connection', 'close'],
    ],
  });
  assert.ok(typeof answer !== 'string' && answer.status === 200, 'GET /openapi.json');
  const document = JSON.parse(answer.body.toString('utf8')) as {
    paths: Record<string, Record<string, { requestBody?: any; security?: unknown; 'x-roles'?: string[] }>>;
  };
  const routes: RouteInfo[] = [];
  for (const [template, operations] of Object.entries(document.paths)) {
    for (const [lower, operation] of Object.entries(operations)) {
      const method = lower.toUpperCase();
      const key = `${method} ${template}`;
      routes.push({
        method,
        template,
        key,
        bodySchema: operation.requestBody?.content?.['application/json']?.schema,
        session: operation.security !== undefined,
        roles: operation['x-roles'] ?? [],
        serial: SERIAL_ROUTES.has(key),
      });
    }
  }
  // Every route Fastify serves is in the document (HEAD is GET's twin).
  const table = fx.running.service.app.printRoutes({ commonPrefix: false });
  const served: string[] = [];
  const stack: string[] = [];
  for (const line of table.split('\n')) {
    // `├── /segment (GET, HEAD)`, indented 4 characters a level; a segment may have no methods.
    const match = /^([│ ]*)[├└]── (\S+)(?: \(([^)]+)\))?/.exec(line);
    if (!match?.[2]) continue;
    stack.length = (match[1] ?? '').length / 4;
    stack.push(match[2]);
    const path = stack.join('').replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    for (const method of match[3]?.split(', ') ?? []) if (method !== 'HEAD') served.push(`${method} ${path}`);
  }
  assert.ok(served.length >= routes.length, table);
  assert.deepEqual(
    served.filter((key) => !routes.some((route) => route.key === key)),
    [],
    'routes Fastify serves that /openapi.json does not list (the fuzzer would miss them)',
  );
  return routes;
}
