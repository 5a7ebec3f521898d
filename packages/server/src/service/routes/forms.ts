/**
 * The healthcare-forms demo (docs/http-api.md, "Forms and public forms"): forms of an
 * organization, the fenced edit lock, public forms with single-use nonces, responses and their
 * PDFs. Form answers (PHI) live in SQL only: Redis sees lock and nonce records keyed by hashes.
 */
import { randomUUID } from 'node:crypto';

import type { FastifyInstance, FastifyReply } from 'fastify';

import type { Session } from 'gatehouse';
import type { HttpRefusal } from 'gatehouse/fastify';

import type { ServiceContext } from '../context.js';
import type { FormField } from '../pdf.js';
import { ok, sendHttpRefusal, sendRefusal } from '../replies.js';
import { requireSession } from '../require-session.js';
import {
  envelope,
  errorResponse,
  formBodySchema,
  formSchema,
  idParams,
  noContent,
  UUID,
} from '../schemas.js';

/** The edit lock lasts 2 minutes unless renewed. */
export const FORM_LOCK_TTL_MS = 2 * 60 * 1000;
/** A PDF render holds its lock this long, renewed while it works. */
const PDF_LOCK_TTL_MS = 30_000;
/** A public form's nonce lives 30 minutes. */
const PUBLIC_NONCE_TTL_MS = 30 * 60 * 1000;
const LOCK_TOKEN_HEADER = 'x-lock-token';

interface FormRow {
  id: string;
  organization_id: string;
  title: string;
  fields: FormField[];
  fence: string | number;
}

interface Form {
  readonly id: string;
  readonly organizationId: string;
  readonly title: string;
  readonly fields: readonly FormField[];
}

async function findForm(context: ServiceContext, id: string): Promise<Form | null> {
  if (!UUID.test(id)) return null;
  const { rows } = await context.db.query(
    'SELECT id, organization_id, title, fields, fence FROM forms WHERE id = $1',
    [id],
  );
  const row = rows[0] as FormRow | undefined;
  return row
    ? { id: row.id, organizationId: row.organization_id, title: row.title, fields: row.fields }
    : null;
}

/** The form when the session's organization owns it; otherwise null (answered 404, never 403). */
async function memberForm(context: ServiceContext, session: Session, id: string): Promise<Form | null> {
  const form = await findForm(context, id);
  return form && form.organizationId === session.organizationId ? form : null;
}

function present(form: Form): { id: string; title: string; fields: readonly FormField[] } {
  return { id: form.id, title: form.title, fields: form.fields };
}

/** Field names are unique and select fields have options; null when fine, else the problem. */
function fieldProblem(fields: readonly FormField[]): string | null {
  const names = new Set<string>();
  for (const field of fields) {
    if (names.has(field.name)) return `body/fields: the name ${field.name} is used twice`;
    names.add(field.name);
    if (field.type === 'select' && (field.options?.length ?? 0) === 0) {
      return `body/fields: the select field ${field.name} needs options`;
    }
  }
  return null;
}

/** Longest answer to a textarea field, and to any other text field (characters). */
const MAX_TEXTAREA_LENGTH = 10_000;
const MAX_TEXT_LENGTH = 1000;
/** All answers of one response together (JSON characters): bounds storage and PDF rendering time. */
const MAX_ANSWERS_LENGTH = 64 * 1024;

/** Checks answers against the form's fields; null when fine, else the problem. */
function answerProblem(fields: readonly FormField[], answers: Record<string, unknown>): string | null {
  const known = new Map(fields.map((field) => [field.name, field]));
  for (const name of Object.keys(answers)) {
    if (!known.has(name)) return `body/answers: no field named ${name.slice(0, 64)}`;
  }
  if (JSON.stringify(answers).length > MAX_ANSWERS_LENGTH) {
    return `body/answers must not exceed ${String(MAX_ANSWERS_LENGTH)} characters in all`;
  }
  for (const field of fields) {
    // Own properties only: a field named `constructor` must not find Object.prototype's.
    const value = Object.hasOwn(answers, field.name) ? answers[field.name] : undefined;
    if (value === undefined || value === null) continue;
    const bad = `body/answers/${field.name} is not a valid ${field.type}`;
    switch (field.type) {
      case 'checkbox':
        if (typeof value !== 'boolean') return bad;
        break;
      case 'number':
        if (typeof value !== 'number' || !Number.isFinite(value)) return bad;
        break;
      case 'date':
        if (
          typeof value !== 'string' ||
          !/^\d{4}-\d{2}-\d{2}$/.test(value) ||
          Number.isNaN(Date.parse(value))
        )
          return bad;
        break;
      case 'email':
        if (typeof value !== 'string' || !/^[^\s@]+@[^\s@]+$/.test(value) || value.length > 320) return bad;
        break;
      case 'phone':
        if (typeof value !== 'string' || !/^[+0-9 ().-]{3,32}$/.test(value)) return bad;
        break;
      case 'select':
        if (typeof value !== 'string' || !(field.options ?? []).includes(value)) return bad;
        break;
      case 'textarea':
        if (typeof value !== 'string' || value.length > MAX_TEXTAREA_LENGTH) return bad;
        break;
      default:
        if (typeof value !== 'string' || value.length > MAX_TEXT_LENGTH) return bad;
    }
  }
  return null;
}

function lockToken(headers: Record<string, string | string[] | undefined>): string | undefined {
  const value = headers[LOCK_TOKEN_HEADER];
  const token = Array.isArray(value) ? value[0] : value;
  return token === undefined || token === '' ? undefined : token;
}

function locked(reply: FastifyReply, retryAfterMs: number): FastifyReply {
  return sendRefusal(reply, 'LOCKED', 'Someone else is editing this form; try again later.', {
    'Retry-After': String(Math.max(1, Math.ceil(retryAfterMs / 1000))),
  });
}

const lockResponse = envelope({
  type: 'object',
  properties: {
    lock: {
      type: 'object',
      properties: {
        token: { type: 'string' },
        fencingToken: { type: 'integer' },
        expiresAt: { type: 'string', format: 'date-time' },
      },
    },
  },
});

const lockTokenHeaders = {
  type: 'object',
  properties: { 'x-lock-token': { type: 'string', maxLength: 256 } },
} as const;

export function registerFormRoutes(app: FastifyInstance, context: ServiceContext): void {
  const { gh, db, audit } = context;
  const member = { session: 'required', rateLimit: 'api' } as const;

  app.post(
    '/api/v1/forms',
    {
      schema: {
        summary: "Create a form in the caller's organization",
        tags: ['forms'],
        body: formBodySchema,
        response: { 201: envelope({ type: 'object', properties: { form: formSchema } }), 400: errorResponse },
      },
      config: { gatehouse: member },
    },
    async (request, reply) => {
      const session = requireSession(request);
      const body = request.body as { title: string; fields: FormField[] };
      const problem = fieldProblem(body.fields);
      if (problem) return sendRefusal(reply, 'VALIDATION_ERROR', problem);
      if (session.organizationId === null)
        return sendRefusal(reply, 'FORBIDDEN', 'You belong to no organization.');
      const form: Form = {
        id: randomUUID(),
        organizationId: session.organizationId,
        title: body.title,
        fields: body.fields.map((field) => ({
          name: field.name,
          label: field.label,
          type: field.type,
          ...(field.options ? { options: field.options } : {}),
        })),
      };
      await db.query(
        'INSERT INTO forms (id, organization_id, created_by, title, fields) VALUES ($1, $2, $3, $4, $5)',
        [form.id, form.organizationId, session.userId, form.title, JSON.stringify(form.fields)],
      );
      audit.record({
        type: 'form.created',
        outcome: 'success',
        userId: session.userId,
        requestId: request.id,
      });
      return reply.code(201).send(ok({ form: present(form) }));
    },
  );

  app.get(
    '/api/v1/forms/:id',
    {
      schema: {
        summary: "A form of the caller's organization",
        tags: ['forms'],
        params: idParams,
        response: { 200: envelope({ type: 'object', properties: { form: formSchema } }), 404: errorResponse },
      },
      config: { gatehouse: member },
    },
    async (request, reply) => {
      const form = await memberForm(context, requireSession(request), (request.params as { id: string }).id);
      if (!form) return sendRefusal(reply, 'NOT_FOUND', 'No such form.');
      return ok({ form: present(form) });
    },
  );

  app.post(
    '/api/v1/forms/:id/lock',
    {
      schema: {
        summary: 'Take or renew (with X-Lock-Token) the 2-minute edit lock, with a fencing token',
        tags: ['forms'],
        params: idParams,
        headers: lockTokenHeaders,
        response: { 200: lockResponse, 404: errorResponse, 409: errorResponse },
      },
      config: { gatehouse: member },
    },
    async (request, reply) => {
      const session = requireSession(request);
      const form = await memberForm(context, session, (request.params as { id: string }).id);
      if (!form) return sendRefusal(reply, 'NOT_FOUND', 'No such form.');
      const resource = `form:${form.id}`;
      const presented = lockToken(request.headers);
      if (presented !== undefined) {
        const renewed = await gh.locks.extend(resource, presented, { ttl: FORM_LOCK_TTL_MS });
        if (renewed.extended && renewed.fencingToken !== null) {
          return ok({
            lock: {
              token: presented,
              fencingToken: renewed.fencingToken,
              expiresAt: new Date(renewed.expiresAtMs).toISOString(),
            },
          });
        }
        // A stale token while the lock is free gets a new lock, below.
      }
      const taken = await gh.locks.tryAcquire(resource, { ttl: FORM_LOCK_TTL_MS });
      if (!taken.acquired) return locked(reply, taken.retryAfterMs);
      // The database learns the newest fencing token at once: from now on a write with an older
      // one is refused, even before this holder writes anything.
      try {
        await db.query('UPDATE forms SET fence = GREATEST(fence, $2) WHERE id = $1', [
          form.id,
          taken.fencingToken,
        ]);
      } catch (error) {
        // Nobody will get this lock's token: free it rather than block the form for its TTL.
        await taken.release().catch(() => undefined);
        throw error;
      }
      audit.record({
        type: 'form.locked',
        outcome: 'success',
        userId: session.userId,
        requestId: request.id,
      });
      return ok({
        lock: {
          token: taken.token,
          fencingToken: taken.fencingToken,
          expiresAt: new Date(taken.expiresAtMs).toISOString(),
        },
      });
    },
  );

  app.put(
    '/api/v1/forms/:id',
    {
      schema: {
        summary: 'Replace a form; only for the holder of its edit lock (X-Lock-Token), fenced in SQL',
        tags: ['forms'],
        params: idParams,
        headers: lockTokenHeaders,
        body: formBodySchema,
        response: {
          200: envelope({ type: 'object', properties: { form: formSchema } }),
          404: errorResponse,
          409: errorResponse,
        },
      },
      config: { gatehouse: member },
    },
    async (request, reply) => {
      const session = requireSession(request);
      const form = await memberForm(context, session, (request.params as { id: string }).id);
      if (!form) return sendRefusal(reply, 'NOT_FOUND', 'No such form.');
      const body = request.body as { title: string; fields: FormField[] };
      const problem = fieldProblem(body.fields);
      if (problem) return sendRefusal(reply, 'VALIDATION_ERROR', problem);
      const presented = lockToken(request.headers);
      const resource = `form:${form.id}`;
      // Holding the lock now is checked (and renewed) in Redis; the write itself is fenced in
      // SQL, so a holder that stalls between the two cannot overwrite a newer holder's work.
      const held =
        presented === undefined
          ? null
          : await gh.locks.extend(resource, presented, { ttl: FORM_LOCK_TTL_MS });
      if (!held?.extended || held.fencingToken === null) return locked(reply, FORM_LOCK_TTL_MS);
      const fields = body.fields.map((field) => ({
        name: field.name,
        label: field.label,
        type: field.type,
        ...(field.options ? { options: field.options } : {}),
      }));
      const { rows } = await db.query(
        `UPDATE forms SET title = $2, fields = $3, fence = $4, updated_at = now()
         WHERE id = $1 AND fence <= $4 RETURNING id`,
        [form.id, body.title, JSON.stringify(fields), held.fencingToken],
      );
      if (rows.length === 0) {
        audit.record({
          type: 'form.write-fenced',
          outcome: 'failure',
          userId: session.userId,
          requestId: request.id,
        });
        return locked(reply, FORM_LOCK_TTL_MS);
      }
      audit.record({
        type: 'form.updated',
        outcome: 'success',
        userId: session.userId,
        requestId: request.id,
      });
      return ok({ form: { id: form.id, title: body.title, fields } });
    },
  );

  app.delete(
    '/api/v1/forms/:id/lock',
    {
      schema: {
        summary: 'Release the edit lock (X-Lock-Token)',
        tags: ['forms'],
        params: idParams,
        headers: lockTokenHeaders,
        response: { 204: noContent, 400: errorResponse, 404: errorResponse, 409: errorResponse },
      },
      config: { gatehouse: member },
    },
    async (request, reply) => {
      const session = requireSession(request);
      const form = await memberForm(context, session, (request.params as { id: string }).id);
      if (!form) return sendRefusal(reply, 'NOT_FOUND', 'No such form.');
      const presented = lockToken(request.headers);
      if (presented === undefined)
        return sendRefusal(reply, 'VALIDATION_ERROR', 'headers/x-lock-token is required');
      const resource = `form:${form.id}`;
      if (await gh.locks.release(resource, presented)) return reply.code(204).send();
      // Not released: either someone else holds it (409), or it is free already (done).
      const probe = await gh.locks.tryAcquire(resource, { ttl: 1000 });
      if (!probe.acquired) return locked(reply, probe.retryAfterMs);
      await probe.release();
      return reply.code(204).send();
    },
  );

  app.get(
    '/api/v1/public/forms/:id',
    {
      schema: {
        summary: 'A form for the public, with a nonce good for one submission within 30 minutes',
        tags: ['public'],
        params: idParams,
        response: {
          200: envelope({ type: 'object', properties: { form: formSchema, nonce: { type: 'string' } } }),
          404: errorResponse,
        },
      },
      config: { gatehouse: { rateLimit: { public: 'ip' } } },
    },
    async (request, reply) => {
      const form = await findForm(context, (request.params as { id: string }).id);
      if (!form) return sendRefusal(reply, 'NOT_FOUND', 'No such form.');
      const { nonce } = await gh.nonces.issue(`form:${form.id}`, { ttl: PUBLIC_NONCE_TTL_MS });
      return ok({ form: present(form), nonce });
    },
  );

  app.post(
    '/api/v1/public/forms/:id/responses',
    {
      schema: {
        summary: "Submit a response to a public form with the form's nonce",
        tags: ['public'],
        params: idParams,
        body: {
          type: 'object',
          required: ['answers'],
          properties: {
            nonce: { type: 'string', maxLength: 256 },
            answers: { type: 'object', maxProperties: 200 },
          },
        },
        response: {
          201: envelope({
            type: 'object',
            properties: { response: { type: 'object', properties: { id: { type: 'string' } } } },
          }),
          400: errorResponse,
          404: errorResponse,
          409: errorResponse,
        },
      },
      config: { gatehouse: { rateLimit: { public: 'ip' }, csrf: false } },
    },
    async (request, reply) => {
      const form = await findForm(context, (request.params as { id: string }).id);
      if (!form) return sendRefusal(reply, 'NOT_FOUND', 'No such form.');
      const body = request.body as { nonce?: string; answers: Record<string, unknown> };
      const problem = answerProblem(form.fields, body.answers);
      if (problem) return sendRefusal(reply, 'VALIDATION_ERROR', problem);
      const used = await gh.nonces.consume(`form:${form.id}`, body.nonce);
      if (!used.ok) {
        return sendRefusal(
          reply,
          'NONCE_INVALID',
          'The form token is missing, used, expired or not for this form.',
        );
      }
      const id = randomUUID();
      await db.query(
        'INSERT INTO form_responses (id, form_id, organization_id, answers) VALUES ($1, $2, $3, $4)',
        [id, form.id, form.organizationId, JSON.stringify(body.answers)],
      );
      // Writing answers is an access to them too: which response of which form (never who
      // answered, nor what).
      audit.record({
        type: 'form.response',
        outcome: 'success',
        requestId: request.id,
        details: { responseId: id, formId: form.id },
      });
      return reply.code(201).send(ok({ response: { id } }));
    },
  );

  app.post(
    '/api/v1/responses/:id/pdf',
    {
      schema: {
        summary: 'A PDF of a response; 409 LOCKED while another of the same response is being made',
        tags: ['forms'],
        params: idParams,
        response: { 404: errorResponse, 409: errorResponse, 429: errorResponse },
      },
      config: { gatehouse: { session: 'required', rateLimit: { api: 'user', pdf: 'user' } } },
    },
    async (request, reply) => {
      const session = requireSession(request);
      const id = (request.params as { id: string }).id;
      if (!UUID.test(id)) return sendRefusal(reply, 'NOT_FOUND', 'No such response.');
      const { rows } = await db.query(
        `SELECT r.id, r.form_id, r.answers, r.created_at, f.title, f.fields
         FROM form_responses r JOIN forms f ON f.id = r.form_id
         WHERE r.id = $1 AND r.organization_id = $2`,
        [id, session.organizationId],
      );
      const row = rows[0] as
        | {
            id: string;
            form_id: string;
            answers: Record<string, unknown>;
            created_at: Date | string;
            title: string;
            fields: FormField[];
          }
        | undefined;
      if (!row) return sendRefusal(reply, 'NOT_FOUND', 'No such response.');
      // From here the answers have been read: every way out is audited, with which response of
      // which form, who, and whether the PDF was made (`reason`: another render held the lock, or
      // the lock or the render failed).
      let made: { pdf: Uint8Array } | { refusal: HttpRefusal } | undefined;
      try {
        // Checked after the organization: no one outside it can hold (or probe) this lock.
        const taken = await app.gatehouse.acquireLock(`pdf:${id}`, { ttl: PDF_LOCK_TTL_MS });
        if (!taken.lock) made = { refusal: taken.refusal };
        else {
          try {
            const pdf = await context.pdf.render(
              {
                formTitle: row.title,
                fields: row.fields,
                answers: row.answers,
                responseId: row.id,
                submittedAt: new Date(row.created_at),
              },
              taken.lock.signal,
            );
            made = { pdf };
          } finally {
            // Freed before the answer goes out: once the client has its PDF, the next render of
            // this response (on any instance) must not find the lock still held.
            await taken.lock.release().catch(() => undefined);
          }
        }
      } finally {
        const rendered = made !== undefined && 'pdf' in made;
        audit.record({
          type: 'form.response.pdf',
          outcome: rendered ? 'success' : 'failure',
          userId: session.userId,
          requestId: request.id,
          details: {
            responseId: row.id,
            formId: row.form_id,
            rendered,
            ...(rendered ? {} : { reason: made === undefined ? 'failed' : 'locked' }),
          },
        });
      }
      if ('refusal' in made) return sendHttpRefusal(reply, made.refusal);
      return reply
        .header('Content-Type', 'application/pdf')
        .header('Content-Disposition', `attachment; filename="response-${id}.pdf"`)
        .send(Buffer.from(made.pdf));
    },
  );
}
