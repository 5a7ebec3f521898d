/**
 * The server's one log: pino JSON lines on stdout (`{"level":30,"time":<epoch ms>,"pid",
 * "hostname","msg",...}`), for start-up, Fastify's request lines, the library and the audit
 * trail alike, so a log pipeline parses one shape.
 *
 * What it never writes: credentials (redacted by path), client addresses, headers or query
 * strings of requests (personal data), and the properties of errors (database errors carry the
 * query's parameters, which can be form answers).
 */
import type { FastifyBaseLogger, FastifyRequest } from 'fastify';
import { pino, type DestinationStream } from 'pino';

import type { LogLevel } from './config.js';

/** pino, as Fastify types it (what `app.log` and `request.log` are). */
export type ServiceLogger = FastifyBaseLogger;

const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-csrf-token"]',
  'req.headers["x-lock-token"]',
  'res.headers["set-cookie"]',
  '*.password',
  '*.token',
  '*.sessionToken',
  '*.accessToken',
  '*.csrfToken',
  '*.nonce',
  '*.inviteCode',
];

/** The service's logger at `level`; `destination` defaults to stdout. */
export function createServiceLogger(level: LogLevel, destination?: DestinationStream): ServiceLogger {
  return pino(
    {
      level,
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      serializers: { req: serializeRequest, err: serializeError },
    },
    destination,
  );
}

/** A request in the log: its method and route pattern (never the raw URL, which may hold ids or tokens). */
function serializeRequest(request: FastifyRequest): { method: string; url: string } {
  return { method: request.method, url: request.routeOptions.url ?? 'unknown' };
}

/** What the log keeps of an error: never its other properties (parameters, rows, requests). */
export function serializeError(error: Error): {
  [key: string]: unknown;
  type: string;
  message: string;
  stack: string;
} {
  const { code, statusCode } = error as { code?: unknown; statusCode?: unknown };
  return {
    type: error.name,
    message: error.message.slice(0, 500),
    ...(typeof code === 'string' ? { code } : {}),
    ...(typeof statusCode === 'number' ? { statusCode } : {}),
    stack: error.stack ?? '',
  };
}
