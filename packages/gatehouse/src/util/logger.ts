/**
 * The logging seam: pino's calling convention (`logger.warn({ ...fields }, 'message')`), so a
 * service passes its pino logger (or any object with these four methods: a Fastify `app.log`,
 * a wrapper around another logger) and the library's lines join its own. Without one the
 * library is silent (`createGatehouse`) or writes warnings to the console (the Express adapter).
 * Fields never hold secrets, tokens or personal data; the library passes hashes and handles.
 */
import { hostname } from 'node:os';

export interface Logger {
  error(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  info(fields: Record<string, unknown>, message: string): void;
  debug(fields: Record<string, unknown>, message: string): void;
}

const LEVEL_RANK = {
  trace: 10,
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  fatal: 60,
  silent: Infinity,
} as const;

export type LoggerLevel = keyof typeof LEVEL_RANK;

/**
 * JSON lines on stderr at `level` and above, in pino's shape (`{"level":40,"time":<epoch ms>,
 * "pid","hostname","msg",...}`), so they parse like the lines of a pino logger beside them.
 */
export function createConsoleLogger(level: LoggerLevel = 'info'): Logger {
  const threshold = LEVEL_RANK[level];
  const host = hostname();
  const write = (
    name: 'debug' | 'info' | 'warn' | 'error',
    fields: Record<string, unknown>,
    message: string,
  ) => {
    if (LEVEL_RANK[name] < threshold) return;
    // The record's own keys last, so a field can never pass for the level, the time or the message.
    const record = {
      ...fields,
      level: LEVEL_RANK[name],
      time: Date.now(),
      pid: process.pid,
      hostname: host,
      msg: message,
    };
    process.stderr.write(`${JSON.stringify(record)}\n`);
  };
  return {
    error: (fields, message) => {
      write('error', fields, message);
    },
    warn: (fields, message) => {
      write('warn', fields, message);
    },
    info: (fields, message) => {
      write('info', fields, message);
    },
    debug: (fields, message) => {
      write('debug', fields, message);
    },
  };
}

export const silentLogger: Logger = createConsoleLogger('silent');
