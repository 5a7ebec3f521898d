/**
 * The two envelopes of the API's answers (docs/http-api.md, "Conventions"):
 * `{"success": true, "data": ...}` and `{"success": false, "error": {"code", "message"}}`. A
 * refusal's status always comes from its code, by the library's one table (`refusal` of
 * `gatehouse/fastify`), so no route can answer a code with the wrong status.
 */
import type { FastifyReply } from 'fastify';

import { refusal, type HttpErrorCode, type HttpRefusal } from 'gatehouse/fastify';

export function ok<T>(data: T): { success: true; data: T } {
  return { success: true, data };
}

/** Sends a refusal as it is: its status, its headers (e.g. `Retry-After`) and its envelope. */
export function sendHttpRefusal(reply: FastifyReply, refused: HttpRefusal): FastifyReply {
  return reply.code(refused.status).headers(refused.headers).send(refused.body);
}

/** Refuses the request with `code` (its status from the library's table), `message` and `headers`. */
export function sendRefusal(
  reply: FastifyReply,
  code: HttpErrorCode,
  message: string,
  headers: Readonly<Record<string, string>> = {},
): FastifyReply {
  return sendHttpRefusal(reply, refusal(code, message, headers));
}
