/**
 * JSON request bodies: the parser every JSON route goes through, and what makes a parsed body
 * unfit to handle. A refused body is answered 400 `VALIDATION_ERROR` (by the error handler of
 * packages/server/src/service/app.ts) before any route runs.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';

/** Fastify's JSON parser, except that an empty body is no body and {@link bodyProblem} is checked. */
export function registerJsonBodyParser(app: FastifyInstance): void {
  app.addContentTypeParser(
    'application/json',
    { parseAs: 'string' },
    (() => {
      const parseJson = app.getDefaultJsonParser('error', 'error');
      // A body-less POST that still says application/json is a body-less POST.
      return (
        request: FastifyRequest,
        body: string | Buffer,
        done: (error: Error | null, value?: unknown) => void,
      ) => {
        if (body === '' || body.length === 0) {
          done(null, undefined);
          return;
        }
        void parseJson(request, body as string, (error: Error | null, value?: unknown) => {
          if (error) {
            done(error);
            return;
          }
          // Refused here, as bad input, before any route spends a nonce or writes anything.
          const problem = bodyProblem(value);
          if (problem !== null) {
            done(Object.assign(new Error(problem), { statusCode: 400 }));
            return;
          }
          done(null, value);
        });
      };
    })(),
  );
}

// eslint-disable-next-line no-control-regex -- NUL is exactly what this looks for
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const UNSTORABLE_MESSAGE = 'strings must be valid Unicode without NUL characters';

/** Bodies nested deeper than this are refused: no form or API body comes close. */
export const MAX_BODY_DEPTH = 64;

/**
 * What makes a parsed JSON body unfit to handle, or null: nesting deeper than MAX_BODY_DEPTH (a
 * deep body would overflow the stack of whatever walks it later), or a string or key holding NUL
 * or a lone surrogate, which PostgreSQL cannot store. A loop over a stack of its own, so any
 * depth gets an answer.
 */
export function bodyProblem(value: unknown): string | null {
  const pending: Array<{ value: unknown; depth: number }> = [{ value, depth: 0 }];
  while (pending.length > 0) {
    const next = pending.pop();
    if (next === undefined) break;
    if (typeof next.value === 'string') {
      if (UNSTORABLE.test(next.value)) return UNSTORABLE_MESSAGE;
      continue;
    }
    if (next.value === null || typeof next.value !== 'object') continue;
    const depth = next.depth + 1;
    if (depth > MAX_BODY_DEPTH) return `the body is nested deeper than ${String(MAX_BODY_DEPTH)} levels`;
    if (Array.isArray(next.value)) {
      // One at a time: spreading a long array into push() would overflow the stack too.
      for (const item of next.value as unknown[]) pending.push({ value: item, depth });
    } else {
      for (const [key, inner] of Object.entries(next.value)) {
        if (UNSTORABLE.test(key)) return UNSTORABLE_MESSAGE;
        pending.push({ value: inner, depth });
      }
    }
  }
  return null;
}
