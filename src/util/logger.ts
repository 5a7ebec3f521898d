/**
 * The logging seam: a pino-compatible subset (`logger.warn({ ...fields }, 'message')`), so a
 * service can pass its pino logger and the library works without one. Fields must never hold
 * secrets, tokens or personal data; callers pass hashes and handles.
 */
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

/** JSON lines on stderr at `level` and above. */
export function createConsoleLogger(level: LoggerLevel = 'info'): Logger {
  const threshold = LEVEL_RANK[level];
  const write = (
    name: 'debug' | 'info' | 'warn' | 'error',
    fields: Record<string, unknown>,
    message: string,
  ) => {
    if (LEVEL_RANK[name] < threshold) return;
    // Fields first, so a field can never pass for the level, the time or the message.
    process.stderr.write(
      `${JSON.stringify({ ...fields, level: name, time: new Date().toISOString(), msg: message })}\n`,
    );
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
