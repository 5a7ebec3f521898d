/**
 * The per-server half of `gatehouse doctor`: one read-only audit connection per Redis server
 * (`NodeSession`), and the checks that run over it. Every command is bounded by a timeout; a
 * command the audit user may not run (NOPERM, or unknown/renamed/disabled) surfaces as
 * `CommandRefusedError` and turns its check into `needs-rights` instead of an error.
 *
 * Nothing here writes: the only commands sent are HELLO (no arguments), PING, INFO,
 * CONFIG GET, ACL WHOAMI/LIST/GETUSER/DRYRUN, CLUSTER INFO/NODES/SLOTS, SCAN, PTTL and TYPE.
 * What the app user may do is asked with ACL DRYRUN, never tried.
 */
import { isIP } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions as TlsConnectionOptions } from 'node:tls';

import { createClient, ErrorReply } from '@redis/client';

import { aclRule, type StandaloneOptions } from 'gatehouse';

import { isLoopbackHost } from '../redis-address.js';
import type { DoctorCheck, DoctorStatus } from './doctor.js';

/**
 * A read-only ACL user that can run every check. One line for an ACL file; the same rules
 * work with `ACL SETUSER gh-auditor on >PASSWORD ...`.
 */
export const AUDITOR_ACL_LINE =
  'user gh-auditor on >PASSWORD ~* &* -@all +info +config|get +acl|whoami +acl|list +acl|getuser +acl|dryrun +cluster|info +cluster|nodes +scan +pttl +type +ping';

const AUDITOR_FIX = `run the doctor as a read-only auditor ACL user; add this line to the ACL file (or the same rules with ACL SETUSER): ${AUDITOR_ACL_LINE}`;

/** The target could not be reached or refused the credentials: nothing could be audited. */
export class DoctorConnectionError extends Error {
  override readonly name = 'DoctorConnectionError';
}

/** The audit user may not run `command` (NOPERM), or the server does not know it (renamed, disabled, too old). */
export class CommandRefusedError extends Error {
  override readonly name = 'CommandRefusedError';

  constructor(
    readonly command: string,
    readonly kind: 'not-permitted' | 'unknown',
    reply: string,
  ) {
    super(`${command}: ${reply}`);
  }
}

/** A command failed for another reason (timeout, closed socket, an error reply). */
export class CommandFailedError extends Error {
  override readonly name = 'CommandFailedError';
}

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

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
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

type AuditClient = ReturnType<typeof makeClient>;

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
function connectionProblem(error: unknown, target: NodeTarget, timeoutMs: number): string {
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

export type Reply = unknown;

/** Text of a bulk/simple string reply (or a number). */
export function asText(reply: Reply): string {
  if (typeof reply === 'string') return reply;
  if (Buffer.isBuffer(reply)) return reply.toString('utf8');
  if (typeof reply === 'number' || typeof reply === 'bigint') return String(reply);
  return '';
}

export function asList(reply: Reply): Reply[] {
  return Array.isArray(reply) ? (reply as Reply[]) : [];
}

/** A flat `[field, value, field, value]` reply (RESP2 maps) as a Map. */
export function asPairs(reply: Reply): Map<string, Reply> {
  const list = asList(reply);
  const map = new Map<string, Reply>();
  for (let i = 0; i + 1 < list.length; i += 2) map.set(asText(list[i]), list[i + 1]);
  return map;
}

/** INFO text as fields. */
export function parseInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0 && !line.startsWith('#')) fields.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  return fields;
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

/** The result of a check before it is named. */
export interface Outcome {
  readonly status: DoctorStatus;
  readonly reason: string;
  readonly fix?: string;
}

/** Everything a per-server check may use. */
export interface NodeContext {
  readonly node: NodeSession;
  readonly keyPrefix: string;
  /** The ACL user the app logs in as, when it is not the audit user. */
  readonly appUser: string | undefined;
  readonly sampleKeys: number;
  readonly timeoutMs: number;
}

/** A check: an id for machines, a title for people, and what it does. */
export interface CheckDefinition<C> {
  readonly id: string;
  readonly title: string;
  readonly run: (context: C) => Promise<Outcome>;
}

/** What a refused command means for a check: it was not audited, and how to change that. */
export function refusedOutcome(error: CommandRefusedError): Outcome {
  return error.kind === 'not-permitted'
    ? {
        status: 'needs-rights',
        reason: `not audited: the ACL user may not run ${error.command} (NOPERM)`,
        fix: AUDITOR_FIX,
      }
    : {
        status: 'needs-rights',
        reason: `not audited: ${error.command} is unknown or disabled on this server (renamed with rename-command, or an older Redis)`,
        fix: `make ${error.command} available to the audit, or ${AUDITOR_FIX}`,
      };
}

/** Runs one check; every error it throws is turned into its result, never passed on. */
export async function runCheck<C>(definition: CheckDefinition<C>, context: C): Promise<DoctorCheck> {
  let outcome: Outcome;
  try {
    outcome = await definition.run(context);
  } catch (error) {
    outcome =
      error instanceof CommandRefusedError
        ? refusedOutcome(error)
        : {
            status: 'warn',
            reason: `could not complete the check: ${errorText(error)}`,
            fix: 'run the doctor again; if it persists, check the server log and the network',
          };
  }
  return {
    id: definition.id,
    title: definition.title,
    status: outcome.status,
    reason: outcome.reason,
    ...(outcome.fix === undefined ? {} : { fix: outcome.fix }),
  };
}

/**
 * `first()`, or `second()` when the first command is refused; when both are refused, one
 * refusal naming both commands.
 */
async function eitherOf<T>(first: () => Promise<T>, second: () => Promise<T>): Promise<T> {
  try {
    return await first();
  } catch (error) {
    if (!(error instanceof CommandRefusedError)) throw error;
    try {
      return await second();
    } catch (again) {
      if (!(again instanceof CommandRefusedError)) throw again;
      const kind = error.kind === 'unknown' && again.kind === 'unknown' ? 'unknown' : 'not-permitted';
      throw new CommandRefusedError(`${error.command} or ${again.command}`, kind, again.message);
    }
  }
}

function pass(reason: string): Outcome {
  return { status: 'pass', reason };
}

function compareVersions(version: string, major: number, minor: number): number {
  const [a = 0, b = 0] = version.split('.').map((part) => Number.parseInt(part, 10) || 0);
  return a !== major ? a - major : b - minor;
}

function megabytes(bytes: number): string {
  return bytes >= 1024 * 1024 * 1024
    ? `${(bytes / 1024 / 1024 / 1024).toFixed(1)} GiB`
    : `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** The gatehouse rule for a user, or a pointer to the command that prints it. */
function ruleFor(prefix: string): string {
  try {
    return aclRule(prefix);
  } catch {
    return `<the output of: gatehouse acl-rule --prefix ${prefix}>`;
  }
}

/** The connected ACL user: ACL WHOAMI, or, when that is refused, the user the connection logged in as. */
export async function connectedUser(node: NodeSession): Promise<{ name: string; fromSettings: boolean }> {
  try {
    return { name: asText(await node.cached(['ACL', 'WHOAMI'])), fromSettings: false };
  } catch (error) {
    if (!(error instanceof CommandRefusedError)) throw error;
    return { name: node.target.username ?? 'default', fromSettings: true };
  }
}

/** Server mode from HELLO (or INFO server): standalone, cluster or sentinel. */
export async function serverMode(node: NodeSession): Promise<string> {
  const mode = (await node.hello()).get('mode');
  if (mode !== undefined && mode !== '') return mode;
  return (await node.info('server')).get('redis_mode') ?? 'unknown';
}

function isLoopbackBind(address: string): boolean {
  const bare = address.replace(/^-/, '');
  return isLoopbackHost(bare);
}

function isWildcardBind(address: string): boolean {
  const bare = address.replace(/^-/, '');
  return bare === '*' || bare === '0.0.0.0' || bare === '::' || bare === '::*';
}

/** Bind addresses; an empty setting means every interface. */
async function bindAddresses(node: NodeSession): Promise<string[]> {
  const bind = (await node.config('bind')) ?? '';
  const addresses = bind.split(/\s+/).filter((item) => item !== '');
  return addresses.length === 0 ? ['*'] : addresses;
}

interface TlsHandshake {
  readonly protocol: string;
  readonly authorized: boolean;
  readonly subject: string;
  readonly validTo: string;
}

/** A TLS handshake of its own to the target (same CA and client certificate), to read what was negotiated. */
function tlsHandshake(target: NodeTarget, timeoutMs: number): Promise<TlsHandshake> {
  const material = target.tls === true || target.tls === undefined || target.tls === false ? {} : target.tls;
  const options: TlsConnectionOptions = {
    host: target.host,
    port: target.port,
    rejectUnauthorized: true,
    ...(isIP(target.host) === 0 ? { servername: target.host } : {}),
    ...(material.ca === undefined ? {} : { ca: material.ca }),
    ...(material.cert === undefined ? {} : { cert: material.cert }),
    ...(material.key === undefined ? {} : { key: material.key }),
  };
  return new Promise((resolve, reject) => {
    const socket = tlsConnect(options);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new CommandFailedError(`TLS handshake did not finish within ${String(timeoutMs)} ms`));
    }, timeoutMs);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      // Typed loosely on purpose: an empty object when the peer sent no certificate.
      const certificate: { subject?: { CN?: unknown }; valid_to?: unknown } = socket.getPeerCertificate();
      const result = {
        protocol: socket.getProtocol() ?? 'unknown',
        authorized: socket.authorized,
        subject: typeof certificate.subject?.CN === 'string' ? certificate.subject.CN : '',
        validTo: typeof certificate.valid_to === 'string' ? certificate.valid_to : 'unknown',
      };
      socket.end();
      resolve(result);
    });
    socket.once('error', (error: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(new CommandFailedError(`TLS handshake failed: ${error.message}`));
    });
  });
}

const TLS_VERSION_ORDER = ['SSLv3', 'TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];

const DEFAULT_USER_FIX =
  'turn the default user off (`user default off` in the ACL file, or ACL SETUSER default off) and give every client its own ACL user with a password';

/** Dry-run probes: each must be denied to the app user. */
function privilegeProbes(prefix: string): Array<{ label: string; args: string[] }> {
  const outside = `not-${prefix}:doctor-probe`;
  return [
    { label: 'FLUSHALL', args: ['FLUSHALL'] },
    { label: 'CONFIG SET', args: ['CONFIG', 'SET', 'maxmemory-policy', 'noeviction'] },
    { label: 'DEBUG SLEEP 0', args: ['DEBUG', 'SLEEP', '0'] },
    { label: 'KEYS *', args: ['KEYS', '*'] },
    { label: 'MODULE LIST', args: ['MODULE', 'LIST'] },
    { label: 'ACL SETUSER', args: ['ACL', 'SETUSER', 'gh-doctor-probe'] },
    { label: `GET on a key outside ${prefix}:*`, args: ['GET', outside] },
    { label: `PUBLISH to a channel outside ${prefix}:*`, args: ['PUBLISH', outside, 'x'] },
  ];
}

/** The per-server checks, in report order (deployment-wide ones are added by the doctor). */
export const NODE_CHECKS: ReadonlyArray<CheckDefinition<NodeContext>> = [
  {
    id: 'version',
    title: 'Redis version and role',
    run: async ({ node }) => {
      const hello = await node.hello();
      let version = hello.get('version') ?? '';
      let mode = hello.get('mode') ?? '';
      let role = hello.get('role') ?? '';
      if (version === '') {
        const server = await node.info('server');
        version = server.get('redis_version') ?? 'unknown';
        mode = server.get('redis_mode') ?? 'unknown';
        role = (await node.info('replication')).get('role') ?? 'unknown';
      }
      const described = `Redis ${version}, ${mode}, role ${role}`;
      if (compareVersions(version, 6, 0) < 0) {
        return {
          status: 'fail',
          reason: `${described}: before 6.0 there are no ACL users`,
          fix: 'upgrade to Redis 7.0 or later',
        };
      }
      if (compareVersions(version, 7, 0) < 0) {
        return {
          status: 'warn',
          reason: `${described}: below 7.0 (no ACL DRYRUN, no sharded pub/sub, no CLUSTER SHARDS)`,
          fix: 'upgrade to Redis 7.0 or later',
        };
      }
      if (role === 'replica' || role === 'slave') {
        return {
          status: 'warn',
          reason: `${described}: this server is a replica, writes will fail`,
          fix: 'point the app at the primary (or use Sentinel or Cluster settings)',
        };
      }
      return pass(described);
    },
  },
  {
    id: 'tls',
    title: 'TLS on the connection',
    run: async ({ node, timeoutMs }) => {
      const target = node.target;
      if (target.tls === undefined || target.tls === false) {
        if (isLoopbackHost(target.host)) {
          return {
            status: 'warn',
            reason: `plaintext to loopback ${target.host} (acceptable only when every local user and process is trusted)`,
            fix: 'serve TLS (tls-port with tls-cert-file, tls-key-file, tls-ca-cert-file; port 0) and connect with rediss://',
          };
        }
        return {
          status: 'fail',
          reason: `plaintext to the non-loopback host ${target.host}: passwords, session data and tokens cross the network in clear`,
          fix: 'serve TLS (tls-port with tls-cert-file, tls-key-file, tls-ca-cert-file; port 0) and connect with rediss:// (REDIS_TLS_CA for a private CA)',
        };
      }
      const handshake = await tlsHandshake(target, timeoutMs);
      const trust =
        target.tls === true || target.tls.ca === undefined ? "the system's CAs" : 'the configured CA';
      const client =
        target.tls !== true && target.tls.cert !== undefined ? ', client certificate presented' : '';
      const described = `${handshake.protocol}, certificate${
        handshake.subject === '' ? '' : ` for ${handshake.subject}`
      } verified against ${trust} (valid until ${handshake.validTo})${client}`;
      const rank = TLS_VERSION_ORDER.indexOf(handshake.protocol);
      if (!handshake.authorized) {
        return { status: 'fail', reason: `${described}: but the certificate was not verified` };
      }
      if (rank !== -1 && rank < TLS_VERSION_ORDER.indexOf('TLSv1.2')) {
        return {
          status: 'fail',
          reason: `${handshake.protocol} negotiated: below TLSv1.2`,
          fix: 'set tls-protocols "TLSv1.2 TLSv1.3"',
        };
      }
      let protocols: string | undefined;
      try {
        protocols = await node.config('tls-protocols');
      } catch {
        protocols = undefined; // Optional detail: the negotiated protocol already decides.
      }
      if (protocols !== undefined && /\bTLSv1(\.1)?\b(?!\.[23])/.test(protocols)) {
        return {
          status: 'warn',
          reason: `${described}; but the server also accepts older protocols (tls-protocols "${protocols}")`,
          fix: 'set tls-protocols "TLSv1.2 TLSv1.3"',
        };
      }
      return pass(described);
    },
  },
  {
    id: 'plaintext-port',
    title: 'No plaintext port beside TLS',
    run: async ({ node }) => {
      if (node.target.tls === undefined || node.target.tls === false) {
        return pass('not applicable: the connection itself is plaintext (see tls)');
      }
      const port = (await node.config('port')) ?? '0';
      if (port === '0') return pass('port 0: only the TLS port accepts connections');
      const bind = await bindAddresses(node);
      const exposed = bind.some((address) => !isLoopbackBind(address));
      return {
        status: exposed ? 'fail' : 'warn',
        reason: `plaintext port ${port} is open beside TLS (bind ${bind.join(' ')})`,
        fix: 'set port 0 so that only tls-port accepts connections',
      };
    },
  },
  {
    id: 'anonymous-access',
    title: 'No access without credentials',
    run: async ({ node, timeoutMs }) => {
      let client: AuditClient;
      try {
        client = await openClient(node.target, false, timeoutMs);
      } catch (error) {
        return {
          status: 'warn',
          reason: `could not open a connection without credentials to test: ${connectionProblem(error, node.target, timeoutMs)}`,
        };
      }
      try {
        const reply = await withTimeout(
          client.sendCommand(['PING']),
          timeoutMs,
          `PING did not answer within ${String(timeoutMs)} ms`,
        );
        return {
          status: 'fail',
          reason: `a connection without credentials answered PING (${asText(reply)}): anyone who can reach the port can read and write`,
          fix: DEFAULT_USER_FIX,
        };
      } catch (error) {
        if (error instanceof ErrorReply && /^(NOAUTH|WRONGPASS)\b/.test(error.message)) {
          return pass(`a connection without credentials is refused (${error.message.split(' ')[0] ?? ''})`);
        }
        if (error instanceof ErrorReply && /^NOPERM\b/.test(error.message)) {
          return {
            status: 'warn',
            reason:
              'a connection without credentials is logged in as the default user (PING is refused by its ACL rules, other commands may not be)',
            fix: DEFAULT_USER_FIX,
          };
        }
        return { status: 'warn', reason: `could not test: ${errorText(error)}` };
      } finally {
        client.destroy();
      }
    },
  },
  {
    id: 'default-user',
    title: 'The default user is off',
    run: async ({ node }) => {
      const { flags, hasPassword } = await eitherOf(
        async () => {
          const user = asPairs(await node.cached(['ACL', 'GETUSER', 'default']));
          return {
            flags: asList(user.get('flags')).map(asText),
            hasPassword: asList(user.get('passwords')).length > 0,
          };
        },
        async () => {
          // ACL LIST says the same in one line per user.
          const lines = asList(await node.cached(['ACL', 'LIST'])).map(asText);
          const words = (lines.find((line) => line.startsWith('user default ')) ?? '').split(' ');
          return {
            flags: words.filter((word) => ['on', 'off', 'nopass'].includes(word)),
            hasPassword: words.some((word) => word.startsWith('#') || word.startsWith('>')),
          };
        },
      );
      if (flags.includes('off') || !flags.includes('on')) return pass('the default user is off');
      if (flags.includes('nopass') || !hasPassword) {
        return {
          status: 'fail',
          reason:
            'the default user is on without a password: every connection is logged in as it before any AUTH',
          fix: DEFAULT_USER_FIX,
        };
      }
      return {
        status: 'warn',
        reason: 'the default user is on with a password (a shared secret, e.g. requirepass)',
        fix: DEFAULT_USER_FIX,
      };
    },
  },
  {
    id: 'app-user',
    title: 'The app has its own ACL user',
    run: async ({ node, appUser, keyPrefix }) => {
      const connected = await connectedUser(node);
      const createFix = `create a user for the app, e.g. ACL SETUSER gatehouse on >PASSWORD ${ruleFor(keyPrefix)}; then set REDIS_USERNAME and REDIS_PASSWORD`;
      const user = appUser ?? connected.name;
      if (user === 'default') {
        return {
          status: 'fail',
          reason: `${appUser === undefined ? 'connected as' : 'the app user is'} the default user: the app should use its own ACL user`,
          fix: createFix,
        };
      }
      if (appUser === undefined) {
        return pass(
          `connected as ACL user '${user}'${
            connected.fromSettings ? ' (from the connection settings: ACL WHOAMI is not permitted)' : ''
          }`,
        );
      }
      let details: Map<string, Reply> | undefined;
      try {
        const reply = await node.cached(['ACL', 'GETUSER', appUser]);
        if (reply === null) {
          return {
            status: 'fail',
            reason: `there is no ACL user '${appUser}' on this server`,
            fix: createFix,
          };
        }
        details = asPairs(reply);
      } catch (error) {
        if (!(error instanceof CommandRefusedError)) throw error;
        return pass(
          `the app user is '${appUser}' (its existence not verified: ACL GETUSER is not permitted)`,
        );
      }
      const flags = asList(details.get('flags')).map(asText);
      if (!flags.includes('on')) {
        return {
          status: 'fail',
          reason: `ACL user '${appUser}' is off: the app cannot log in`,
          fix: `ACL SETUSER ${appUser} on`,
        };
      }
      return pass(`the app user is '${appUser}' (audited as '${connected.name}')`);
    },
  },
  {
    id: 'least-privilege',
    title: 'The app user is least-privilege',
    run: async ({ node, appUser, keyPrefix }) => {
      const user = appUser ?? (await connectedUser(node)).name;
      const allowed: string[] = [];
      for (const probe of privilegeProbes(keyPrefix)) {
        let reply: Reply;
        try {
          reply = await node.send(['ACL', 'DRYRUN', user, ...probe.args]);
        } catch (error) {
          if (error instanceof CommandFailedError && /User .* not found/i.test(error.message)) {
            return {
              status: 'fail',
              reason: `there is no ACL user '${user}' on this server`,
              fix: `create it: ACL SETUSER ${user} on >PASSWORD ${ruleFor(keyPrefix)}`,
            };
          }
          throw error;
        }
        if (asText(reply) === 'OK') allowed.push(probe.label);
      }
      if (allowed.length > 0) {
        return {
          status: 'fail',
          reason: `ACL user '${user}' may run ${allowed.join(', ')} (each must be denied)`,
          fix:
            user === 'default'
              ? `give the app its own user with gatehouse's rule: ACL SETUSER gatehouse on >PASSWORD ${ruleFor(keyPrefix)}`
              : `restrict it to gatehouse's rule (passwords are kept): ACL SETUSER ${user} ${ruleFor(keyPrefix)}`,
        };
      }
      return pass(
        `ACL user '${user}' is denied FLUSHALL, CONFIG SET, DEBUG, KEYS, MODULE, ACL SETUSER and keys and channels outside ${keyPrefix}:*`,
      );
    },
  },
  {
    id: 'requirepass',
    title: 'No shared requirepass',
    run: async ({ node }) => {
      const value = (await node.config('requirepass')) ?? '';
      if (value === '') return pass('requirepass is not set');
      return {
        status: 'warn',
        reason: `requirepass is set (${String(value.length)} characters): a shared password kept in clear in the configuration`,
        fix: 'remove requirepass (from redis.conf, and CONFIG SET requirepass ""), turn the default user off and use ACL users with hashed passwords (#<sha256> in the ACL file)',
      };
    },
  },
  {
    id: 'protected-mode',
    title: 'Protected mode',
    run: async ({ node }) => {
      const mode = (await node.config('protected-mode')) ?? 'yes';
      if (mode === 'yes') return pass('protected-mode yes');
      const bind = await bindAddresses(node);
      if (bind.some(isWildcardBind)) {
        return {
          status: 'fail',
          reason: `protected-mode no and bind ${bind.join(' ')}: Redis listens on every interface with nothing held back`,
          fix: 'set protected-mode yes and bind only the addresses clients use',
        };
      }
      return {
        status: 'warn',
        reason: `protected-mode no (bind ${bind.join(' ')})`,
        fix: 'set protected-mode yes',
      };
    },
  },
  {
    id: 'bind',
    title: 'Bind addresses',
    run: async ({ node }) => {
      const bind = await bindAddresses(node);
      if (bind.some(isWildcardBind)) {
        return {
          status: 'warn',
          reason: `bind ${bind.join(' ')}: listens on every interface`,
          fix: 'bind only loopback and the private addresses clients use',
        };
      }
      const loopbackOnly = bind.every(isLoopbackBind);
      return pass(`bind ${bind.join(' ')}${loopbackOnly ? ' (loopback only)' : ''}`);
    },
  },
  {
    id: 'maxmemory-policy',
    title: 'No eviction',
    run: async ({ node }) => {
      const policy = await eitherOf(
        () => node.config('maxmemory-policy'),
        async () => (await node.info('memory')).get('maxmemory_policy'),
      );
      if (policy === 'noeviction')
        return pass('noeviction: a full Redis refuses writes instead of dropping keys');
      return {
        status: 'fail',
        reason: `${policy ?? 'unknown'}: evicts locks, rate limits, nonces and sessions`,
        fix: 'set maxmemory-policy noeviction (CONFIG SET maxmemory-policy noeviction, and in redis.conf)',
      };
    },
  },
  {
    id: 'memory',
    title: 'Memory headroom and evictions',
    run: async ({ node }) => {
      const memory = await node.info('memory');
      const stats = await node.info('stats');
      const used = Number(memory.get('used_memory') ?? '0');
      const max = Number(memory.get('maxmemory') ?? '0');
      const evicted = Number(stats.get('evicted_keys') ?? '0');
      if (evicted > 0) {
        return {
          status: 'fail',
          reason: `${String(evicted)} keys were evicted since the server started (evicted_keys): locks, limits, nonces or sessions may have been dropped`,
          fix: 'set maxmemory-policy noeviction and give Redis more memory; revoke sessions if revocation markers may have been lost',
        };
      }
      if (max === 0) {
        return {
          status: 'warn',
          reason: `used ${megabytes(used)}, maxmemory 0: no limit: the host's memory is the limit`,
          fix: "set maxmemory below the host's memory (with noeviction, writes then fail loudly when it is full)",
        };
      }
      const ratio = used / max;
      const described = `used ${megabytes(used)} of ${megabytes(max)} (${(ratio * 100).toFixed(1)}%)`;
      if (ratio > 0.95) {
        return {
          status: 'fail',
          reason: `${described}: writes are about to be refused`,
          fix: 'raise maxmemory or add capacity',
        };
      }
      if (ratio > 0.8) {
        return { status: 'warn', reason: `${described}: over 80%`, fix: 'raise maxmemory or add capacity' };
      }
      return pass(described);
    },
  },
  {
    id: 'persistence',
    title: 'Persistence',
    run: async ({ node }) => {
      const appendonly = (await node.config('appendonly')) ?? 'no';
      if (appendonly === 'yes') {
        const fsync = (await node.config('appendfsync')) ?? 'unknown';
        if (fsync === 'no') {
          return {
            status: 'warn',
            reason: 'AOF on, appendfsync no: the operating system decides when writes reach the disk',
            fix: 'set appendfsync everysec',
          };
        }
        return pass(`AOF on (appendfsync ${fsync})`);
      }
      const save = (await node.config('save')) ?? '';
      return {
        status: 'warn',
        reason: `appendonly no (RDB snapshots: ${save === '' ? 'off' : `save ${save}`}): a restart loses what was written since; durable sessions need SQL or AOF`,
        fix: 'enable AOF (appendonly yes, appendfsync everysec), or keep SESSION_DURABLE=true with SQL',
      };
    },
  },
  {
    id: 'replication',
    title: 'Replication',
    run: async ({ node }) => {
      const replication = await node.info('replication');
      const role = replication.get('role') ?? 'unknown';
      if (role === 'slave' || role === 'replica') {
        return {
          status: 'warn',
          reason: `this server is a replica of ${replication.get('master_host') ?? '?'}:${replication.get('master_port') ?? '?'}`,
          fix: 'audit the primary',
        };
      }
      const replicas = Number(replication.get('connected_slaves') ?? '0');
      let minReplicas: string | undefined;
      try {
        minReplicas = await node.config('min-replicas-to-write');
      } catch {
        minReplicas = undefined; // A detail: the replica count decides.
      }
      const min = minReplicas === undefined ? '' : `, min-replicas-to-write ${minReplicas}`;
      if (replicas === 0) {
        return {
          status: 'warn',
          reason: `no replicas connected${min}: losing this server loses what it holds`,
          fix: 'add a replica (with Sentinel or Cluster for failover), and consider min-replicas-to-write 1',
        };
      }
      return pass(`${String(replicas)} replica${replicas === 1 ? '' : 's'} connected${min}`);
    },
  },
  {
    id: 'pubsub-default',
    title: 'New ACL users get no channels',
    run: async ({ node }) => {
      const value = (await node.config('acl-pubsub-default')) ?? 'unknown';
      if (value === 'resetchannels') return pass('acl-pubsub-default resetchannels');
      return {
        status: 'warn',
        reason: `acl-pubsub-default ${value}: new ACL users may use every pub/sub channel unless their rule says resetchannels`,
        fix: 'set acl-pubsub-default resetchannels',
      };
    },
  },
  {
    id: 'keys-without-ttl',
    title: 'Every key expires',
    run: async ({ node, keyPrefix, sampleKeys, timeoutMs }) => {
      const keys: string[] = [];
      let cursor = '0';
      let calls = 0;
      const deadline = Date.now() + Math.max(10 * timeoutMs, 5000);
      let complete: boolean;
      do {
        const reply = asList(await node.send(['SCAN', cursor, 'MATCH', `${keyPrefix}:*`, 'COUNT', '500']));
        cursor = asText(reply[0]);
        for (const key of asList(reply[1])) {
          if (keys.length < sampleKeys) keys.push(asText(key));
        }
        calls += 1;
        complete = cursor === '0';
      } while (!complete && keys.length < sampleKeys && calls < 10_000 && Date.now() < deadline);
      const withoutTtl: string[] = [];
      for (let i = 0; i < keys.length; i += 100) {
        const batch = keys.slice(i, i + 100);
        const ttls = await Promise.all(batch.map((key) => node.send(['PTTL', key])));
        ttls.forEach((ttl, index) => {
          if (Number(ttl) === -1) withoutTtl.push(batch[index] ?? '');
        });
      }
      const sample = complete
        ? `${String(keys.length)} key${keys.length === 1 ? '' : 's'} under ${keyPrefix}:`
        : `a sample of ${String(keys.length)} keys under ${keyPrefix}:`;
      if (withoutTtl.length === 0) {
        return pass(keys.length === 0 ? `no keys under ${keyPrefix}:` : `${sample}, every one with a TTL`);
      }
      const named = await Promise.all(
        withoutTtl.slice(0, 5).map(async (key) => {
          const shown = key.replace(/\p{Cc}/gu, '?').slice(0, 120);
          try {
            return `${shown} (${asText(await node.send(['TYPE', key]))})`;
          } catch {
            return shown;
          }
        }),
      );
      return {
        status: 'fail',
        reason: `${String(withoutTtl.length)} of ${sample} have no TTL: ${named.join(', ')}${
          withoutTtl.length > 5 ? ', ...' : ''
        }`,
        fix: `gatehouse sets a TTL on every key it writes: find what wrote these, then delete or PEXPIRE them; do not share the prefix ${keyPrefix} with other applications`,
      };
    },
  },
];
