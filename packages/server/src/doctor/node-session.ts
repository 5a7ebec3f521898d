/**
 * One read-only audit connection per Redis server (`NodeSession`). Every command is bounded by a
 * timeout; a command the audit user may not run (NOPERM, or unknown/renamed/disabled) surfaces
 * as `CommandRefusedError`, which its check turns into `needs-rights` instead of an error.
 *
 * Nothing here writes: the only commands the doctor sends are HELLO (no arguments), PING, INFO,
 * CONFIG GET, ACL WHOAMI/LIST/GETUSER/DRYRUN, CLUSTER INFO/NODES/SLOTS, SCAN, PTTL and TYPE.
 * What the app user may do is asked with ACL DRYRUN, never tried.
 */
import { isIP } from 'node:net';

import { createClient, ErrorReply } from '@redis/client';

import type { StandaloneOptions } from 'gatehouse';

import { CommandFailedError, CommandRefusedError, DoctorConnectionError, errorText } from './errors.js';
import { asPairs, asText, parseInfo, type Reply } from './replies.js';

/** One server as the doctor connects to it: a standalone connection, whatever the topology. */
export type NodeTarget = Omit<StandaloneOptions, 'topology'>;

/** `host:port`, IPv6 in brackets. */
export function formatAddress(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${String(port)}`;
}

/** Command words for messages: `CONFIG GET`, `ACL DRYRUN`, `PING`. */
function commandName(args: readonly string[]): string {
  const first = (args[0] ?? '').toUpperCase();
  const containers = ['CONFIG', 'ACL', 'CLUSTER', 'CLIENT', 'MODULE', 'SENTINEL', 'DEBUG', 'MEMORY'];
  return containers.includes(first) && args[1] !== undefined ? `${first} ${args[1].toUpperCase()}` : first;
}

/** Rejects with `message` after `ms`; the timer never outlives the call. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new CommandFailedError(message));
    }, ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function tlsSocketOptions(target: NodeTarget) {
  if (target.tls === undefined || target.tls === false) return {};
  const material = target.tls === true ? {} : target.tls;
  return {
    tls: true as const,
    rejectUnauthorized: true,
    ...(isIP(target.host) === 0 ? { servername: target.host } : {}),
    ...(material.ca === undefined ? {} : { ca: material.ca }),
    ...(material.cert === undefined ? {} : { cert: material.cert }),
    ...(material.key === undefined ? {} : { key: material.key }),
  };
}

/** A one-shot client: RESP2 (plain arrays), no offline queue, no reconnects, no client-info handshake. */
function makeClient(target: NodeTarget, withCredentials: boolean, timeoutMs: number) {
  const client = createClient({
    socket: {
      host: target.host,
      port: target.port,
      connectTimeout: timeoutMs,
      reconnectStrategy: false,
      ...tlsSocketOptions(target),
    },
    ...(withCredentials && target.username !== undefined ? { username: target.username } : {}),
    ...(withCredentials && target.password !== undefined ? { password: target.password } : {}),
    ...(withCredentials && target.db !== undefined && target.db !== 0 ? { database: target.db } : {}),
    RESP: 2,
    disableOfflineQueue: true,
    disableClientInfo: true,
    commandOptions: { timeout: timeoutMs },
  });
  client.on('error', () => undefined);
  return client;
}

export type AuditClient = ReturnType<typeof makeClient>;

/** Opens a client and waits for it, bounded; the client is destroyed when it fails. */
export async function openClient(
  target: NodeTarget,
  withCredentials: boolean,
  timeoutMs: number,
): Promise<AuditClient> {
  const client = makeClient(target, withCredentials, timeoutMs);
  try {
    await withTimeout(client.connect(), timeoutMs + 500, `no connection within ${String(timeoutMs)} ms`);
    return client;
  } catch (error) {
    client.destroy();
    throw error;
  }
}

/** Why a connection failed, in words an operator can act on (never with the password). */
export function connectionProblem(error: unknown, target: NodeTarget, timeoutMs: number): string {
  if (error instanceof ErrorReply) {
    const user = target.username ?? 'default';
    if (/^WRONGPASS/.test(error.message)) {
      return `the server refused the credentials of ACL user '${user}' (WRONGPASS: wrong password, or the user is off)`;
    }
    if (/^NOAUTH/.test(error.message)) {
      return 'the server requires authentication: give a username and password (REDIS_USERNAME/REDIS_PASSWORD or in the URL)';
    }
    if (/^NOPERM/.test(error.message) && target.db !== undefined && target.db !== 0) {
      return `ACL user '${user}' may not SELECT database ${String(target.db)} (${error.message})`;
    }
    return `the server answered with an error: ${error.message}`;
  }
  const text = errorText(error);
  if (/timeout|timed out|no connection within/i.test(text)) {
    return `no connection within ${String(timeoutMs)} ms (${text})`;
  }
  if (/certificate|self[- ]signed|unable to verify/i.test(text)) {
    return `${text} (the server's certificate could not be verified: give its CA with REDIS_TLS_CA or --tls-ca)`;
  }
  return text;
}

/**
 * One audit connection to one server. Read-only commands are asked once and remembered, so
 * checks that share a setting do not ask twice.
 */
export class NodeSession {
  private readonly memo = new Map<string, Promise<Reply>>();

  private constructor(
    readonly target: NodeTarget,
    private readonly client: AuditClient,
    readonly timeoutMs: number,
  ) {}

  get address(): string {
    return formatAddress(this.target.host, this.target.port);
  }

  /**
   * Connects with the target's credentials and makes sure the server answers (HELLO without
   * arguments, which every user may send). Throws `DoctorConnectionError` otherwise.
   */
  static async open(target: NodeTarget, timeoutMs: number): Promise<NodeSession> {
    const address = formatAddress(target.host, target.port);
    let client: AuditClient;
    try {
      client = await openClient(target, true, timeoutMs);
    } catch (error) {
      throw new DoctorConnectionError(
        `cannot connect to Redis at ${address}: ${connectionProblem(error, target, timeoutMs)}`,
      );
    }
    const session = new NodeSession(target, client, timeoutMs);
    try {
      const hello = await withTimeout(
        client.sendCommand(['HELLO']),
        timeoutMs,
        `no answer within ${String(timeoutMs)} ms`,
      );
      session.memo.set('HELLO', Promise.resolve(hello));
    } catch (error) {
      // An error reply is an answer (an old server without argument-less HELLO), except NOAUTH.
      if (!(error instanceof ErrorReply) || /^NOAUTH\b/.test(error.message)) {
        session.close();
        const problem = connectionProblem(error, target, timeoutMs);
        const plaintext = target.tls === undefined || target.tls === false;
        const hint =
          plaintext && !(error instanceof ErrorReply) && /ECONNRESET|EPIPE|closed/i.test(errorText(error))
            ? ' (a TLS-only port? then use rediss:// or REDIS_TLS=true)'
            : '';
        throw new DoctorConnectionError(`cannot talk to Redis at ${address}: ${problem}${hint}`);
      }
    }
    return session;
  }

  /** Sends one command, bounded by the timeout; refusals become `CommandRefusedError`. */
  async send(args: readonly string[]): Promise<Reply> {
    const name = commandName(args);
    try {
      return await withTimeout(
        this.client.sendCommand(args),
        this.timeoutMs,
        `${name} did not answer within ${String(this.timeoutMs)} ms`,
      );
    } catch (error) {
      if (error instanceof ErrorReply) {
        const message = error.message;
        if (/^(NOPERM|NOAUTH)\b/.test(message)) throw new CommandRefusedError(name, 'not-permitted', message);
        if (/unknown command|unknown subcommand|disabled/i.test(message)) {
          throw new CommandRefusedError(name, 'unknown', message);
        }
        throw new CommandFailedError(`${name} failed: ${message}`);
      }
      if (error instanceof CommandFailedError) throw error;
      throw new CommandFailedError(`${name} failed: ${errorText(error)}`);
    }
  }

  /** `send`, remembered per argument list (for read-only commands only). */
  cached(args: readonly string[]): Promise<Reply> {
    const key = args.join('\u0000');
    let reply = this.memo.get(key);
    if (!reply) {
      reply = this.send(args);
      this.memo.set(key, reply);
    }
    return reply;
  }

  /** CONFIG GET of one parameter; undefined when the server does not have it. */
  async config(name: string): Promise<string | undefined> {
    const value = asPairs(await this.cached(['CONFIG', 'GET', name])).get(name);
    return value === undefined ? undefined : asText(value);
  }

  /** INFO of one section, as fields. */
  async info(section: string): Promise<Map<string, string>> {
    return parseInfo(asText(await this.cached(['INFO', section])));
  }

  /** HELLO's server description (version, mode, role); empty on servers without it. */
  async hello(): Promise<Map<string, string>> {
    try {
      const fields = asPairs(await this.cached(['HELLO']));
      return new Map([...fields].map(([field, value]) => [field, asText(value)]));
    } catch {
      return new Map();
    }
  }

  close(): void {
    this.client.destroy();
  }
}
