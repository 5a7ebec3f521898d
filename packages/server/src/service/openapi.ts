/**
 * The OpenAPI 3 document, built from the very schemas Fastify validates requests with (collected
 * as routes are added), so the document cannot drift from what the service accepts.
 */
import type { FastifyInstance, RouteOptions } from 'fastify';

interface CollectedRoute {
  readonly method: string;
  readonly url: string;
  readonly schema: Record<string, unknown>;
  readonly requirements: { session: boolean; roles: readonly string[]; rateLimit: unknown } | null;
}

export interface OpenApiCollector {
  document(version: string): Record<string, unknown>;
}

declare module 'fastify' {
  interface FastifySchema {
    /** OpenAPI: one line on what the route does. */
    summary?: string;
    /** OpenAPI: the groups the route is listed under. */
    tags?: readonly string[];
    /** OpenAPI: the body may be left out (the route then handles it as `{}`). */
    optionalBody?: boolean;
  }
}

const SKIPPED_METHODS = new Set(['HEAD', 'OPTIONS']);

export function collectOpenApi(app: FastifyInstance): OpenApiCollector {
  const routes: CollectedRoute[] = [];
  app.addHook('onRoute', (route: RouteOptions) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const guard = route.config?.gatehouse;
    for (const method of methods) {
      if (SKIPPED_METHODS.has(method) || route.schema === undefined) continue;
      routes.push({
        method: method.toLowerCase(),
        url: route.url,
        schema: route.schema as Record<string, unknown>,
        requirements: guard
          ? {
              session: guard.session === 'required' || guard.roles !== undefined,
              roles: guard.roles ?? [],
              rateLimit: guard.rateLimit,
            }
          : null,
      });
    }
  });
  return { document: (version) => build(routes, version) };
}

function build(routes: readonly CollectedRoute[], version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const path = route.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    const operation: Record<string, unknown> = {
      operationId: `${route.method}${path.replace(/[^A-Za-z0-9]+/g, '_')}`,
      summary: route.schema.summary,
      tags: route.schema.tags,
      parameters: [
        ...parameters(route.schema.params, 'path'),
        ...parameters(route.schema.querystring, 'query'),
        ...parameters(route.schema.headers, 'header'),
      ],
      responses: responses(route.schema.response),
    };
    if (route.schema.body !== undefined) {
      operation.requestBody = {
        required: route.schema.optionalBody !== true,
        content: { 'application/json': { schema: route.schema.body } },
      };
    }
    if (route.requirements?.session) {
      operation.security = [{ sessionCookie: [] }, { bearer: [] }];
      if (route.requirements.roles.length > 0) operation['x-roles'] = route.requirements.roles;
    }
    if (route.requirements?.rateLimit !== undefined) operation['x-rate-limit'] = route.requirements.rateLimit;
    paths[path] ??= {};
    paths[path][route.method] = operation;
  }
  return {
    openapi: '3.0.3',
    info: {
      title: 'gatehouse reference service',
      version,
      description:
        'A healthcare-forms backend on gatehouse. Success: {success: true, data}. Error: {success: false, error: {code, message}}.',
    },
    paths,
    components: {
      securitySchemes: {
        sessionCookie: { type: 'apiKey', in: 'cookie', name: '__Host-gh_session' },
        bearer: { type: 'http', scheme: 'bearer', description: 'a session token or an access token (JWT)' },
      },
    },
  };
}

function parameters(schema: unknown, where: 'path' | 'query' | 'header'): Record<string, unknown>[] {
  if (typeof schema !== 'object' || schema === null) return [];
  const { properties, required } = schema as { properties?: Record<string, unknown>; required?: string[] };
  return Object.entries(properties ?? {}).map(([name, property]) => ({
    name,
    in: where,
    required: where === 'path' || (required ?? []).includes(name),
    schema: property,
  }));
}

function responses(schema: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (typeof schema === 'object' && schema !== null) {
    for (const [status, body] of Object.entries(schema as Record<string, unknown>)) {
      out[status] = {
        description: describeStatus(status),
        content: { 'application/json': { schema: body } },
      };
    }
  }
  if (Object.keys(out).length === 0) out.default = { description: 'see the service contract' };
  return out;
}

function describeStatus(status: string): string {
  const text: Record<string, string> = {
    '200': 'OK',
    '201': 'Created',
    '204': 'No content',
    '400': 'VALIDATION_ERROR',
    '401': 'UNAUTHENTICATED',
    '403': 'CSRF_INVALID or FORBIDDEN',
    '404': 'NOT_FOUND',
    '409': 'CONFLICT, LOCKED or NONCE_INVALID',
    '413': 'PAYLOAD_TOO_LARGE',
    '429': 'RATE_LIMITED',
    '503': 'SERVICE_UNAVAILABLE',
  };
  return text[status] ?? status;
}

/** A readable page for the document: static HTML and inline CSS, no scripts (strict CSP). */
export function openApiPage(document: Record<string, unknown>): string {
  const paths = document.paths as Record<string, Record<string, { summary?: string; security?: unknown }>>;
  const rows = Object.entries(paths)
    .flatMap(([path, operations]) =>
      Object.entries(operations).map(
        ([method, operation]) =>
          `<tr><td class="m">${escapeHtml(method.toUpperCase())}</td><td><code>${escapeHtml(path)}</code></td><td>${escapeHtml(
            operation.summary ?? '',
          )}</td><td>${operation.security ? 'session' : ''}</td></tr>`,
      ),
    )
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gatehouse API</title>
<style>body{font:15px/1.5 system-ui,sans-serif;margin:2rem;color:#222}table{border-collapse:collapse}td,th{padding:.3rem .8rem;border-bottom:1px solid #ddd;text-align:left}.m{font-weight:600}</style>
</head><body><h1>gatehouse reference service API</h1>
<p>The machine-readable document is at <a href="/openapi.json">/openapi.json</a>. Every error is <code>{"success": false, "error": {"code", "message"}}</code>.</p>
<table><thead><tr><th>method</th><th>path</th><th>what</th><th>needs</th></tr></thead><tbody>
${rows}
</tbody></table></body></html>`;
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${String(c.charCodeAt(0))};`);
}
