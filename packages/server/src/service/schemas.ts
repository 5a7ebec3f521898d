/**
 * JSON schemas shared by the routes (they validate requests and feed /openapi.json), and a
 * session as the API shows it (docs/http-api.md). The envelopes themselves are built by
 * packages/server/src/service/replies.ts.
 */
import type { Session } from 'gatehouse';

/** Ids the service makes are UUIDs; anything else is a 404 without a database round trip. */
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export const idParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', minLength: 1, maxLength: 128 } },
} as const;

export const errorResponse = {
  type: 'object',
  required: ['success', 'error'],
  properties: {
    success: { const: false },
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: { code: { type: 'string' }, message: { type: 'string' } },
    },
  },
} as const;

/** 204: no body. */
export const noContent = { type: 'null', description: 'No content' } as const;

/** `{success: true, data}` around `data`. */
export function envelope(data: object): object {
  return { type: 'object', required: ['success', 'data'], properties: { success: { const: true }, data } };
}

export const userSchema = {
  type: 'object',
  required: ['id', 'email', 'organizationId', 'roles'],
  properties: {
    id: { type: 'string' },
    email: { type: 'string' },
    organizationId: { type: 'string' },
    roles: { type: 'array', items: { type: 'string' } },
  },
} as const;

export const sessionSchema = {
  type: 'object',
  properties: {
    id: { type: 'string', description: 'the public handle, never the token' },
    createdAt: { type: 'string', format: 'date-time' },
    lastSeenAt: { type: 'string', format: 'date-time' },
    expiresAt: { type: 'string', format: 'date-time' },
    idleExpiresAt: { type: 'string', format: 'date-time' },
    ipAddress: { type: ['string', 'null'] },
    userAgent: { type: ['string', 'null'] },
    requestCount: { type: 'integer' },
    current: { type: 'boolean' },
  },
} as const;

export const fieldSchema = {
  type: 'object',
  required: ['name', 'label', 'type'],
  properties: {
    name: { type: 'string', pattern: '^[A-Za-z][A-Za-z0-9_]{0,63}$' },
    label: { type: 'string', minLength: 1, maxLength: 500 },
    type: { enum: ['text', 'textarea', 'number', 'date', 'email', 'phone', 'select', 'checkbox'] },
    options: {
      type: 'array',
      minItems: 1,
      maxItems: 200,
      items: { type: 'string', minLength: 1, maxLength: 200 },
    },
  },
} as const;

export const formBodySchema = {
  type: 'object',
  required: ['title', 'fields'],
  properties: {
    title: { type: 'string', minLength: 1, maxLength: 300 },
    fields: { type: 'array', maxItems: 200, items: fieldSchema },
  },
} as const;

export const formSchema = {
  type: 'object',
  required: ['id', 'title', 'fields'],
  properties: {
    id: { type: 'string' },
    title: { type: 'string' },
    fields: { type: 'array', items: fieldSchema },
  },
} as const;

/** A session as the API shows it. */
export function presentSession(session: Session, currentHandle: string | null): Record<string, unknown> {
  return {
    id: session.handle,
    createdAt: new Date(session.createdAtMs).toISOString(),
    lastSeenAt: new Date(session.lastSeenAtMs).toISOString(),
    expiresAt: new Date(session.absoluteExpiresAtMs).toISOString(),
    idleExpiresAt: new Date(session.idleExpiresAtMs).toISOString(),
    ipAddress: session.ip,
    userAgent: session.userAgent,
    requestCount: session.requestCount,
    current: session.handle === currentHandle,
  };
}
