/**
 * RedisStore: the store contract on Redis standalone, Sentinel or Cluster through node-redis.
 *
 * Fail fast (see shared/REDIS-NOTES.md): the offline queue is off, every command has a timeout
 * (default 500 ms), and reconnects back off exponentially from 50 ms up to a cap, with jitter so
 * a fleet of instances does not reconnect in lockstep. The first connection is started in the
 * constructor and never awaited on a request path: while Redis is away every operation fails at
 * once with StoreUnavailableError, and resumes by itself when Redis returns.
 */
import { isIP } from 'node:net';

import { createClient, createCluster, createSentinel, ErrorReply, RESP_TYPES } from '@redis/client';

import { GatehouseError, StoreCommandError, StorePermissionError, StoreUnavailableError } from '../errors.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { Batcher, GroupedBatcher } from './batcher.js';
import { KeySpace } from './keys.js';
import type {
  ClusterOptions,
  RedisConnectionOptions,
  SentinelOptions,
  StandaloneOptions,
} from './options.js';
import { defineScript, type LuaScript } from './script.js';
import { keySlot } from './slot.js';
import { decodeSessionValue, encodeSessionValue, sessionKey, sessionKeys, userKeys } from './session-keys.js';
import {
  assertLockArguments,
  assertRateLimitRules,
  assertTtlMs,
  FENCE_TTL_EXTRA_MS,
  rateLimitState,
  type LockAcquireResult,
  type LockExtendResult,
  SESSION_END_REASONS,
  type IdempotencyBegin,
  type MarkerArea,
  type MarkerMode,
  type RateLimitRule,
  type RateLimitState,
  type SessionEndReason,
  type SessionLimits,
  type SessionRef,
  type SessionValidateOptions,
  type SessionValidation,
  type StoredSession,
  type ProbeResult,
  type ServerInfo,
  type Store,
  type StoreHealth,
  type StoreNodeHealth,
} from './store.js';

export interface RedisStoreOptions {
  readonly connection: RedisConnectionOptions;
  readonly keyPrefix?: string;
  readonly logger?: Logger;
}

export const DEFAULT_COMMAND_TIMEOUT_MS = 500;
export const DEFAULT_CONNECT_TIMEOUT_MS = 2000;
export const DEFAULT_RECONNECT_MAX_DELAY_MS = 2000;
export const DEFAULT_SENTINEL_SCAN_INTERVAL_MS = 2000;
const RECONNECT_BASE_DELAY_MS = 50;
/**
 * Calls still waiting on Redis after their deadline. Past this many, new calls are refused at
 * once without being sent, so a stalled server cannot make the process queue without bound.
 * Standalone holds new calls back sooner, from the first overdue command (see withDeadline).
 */
export const MAX_OVERDUE_CALLS = 200;
/** How often deadlines are checked: a deadline fires at most this late. */
const DEADLINE_SWEEP_MS = 20;
/**
 * While the standalone command connection is stalled, a new call waits at most this long for
 * the overdue replies before it is refused: long enough to read what a server sends as it wakes
 * up, short enough that a request making several calls during a stall still answers within
 * about one command timeout.
 */
const STALL_GRACE_MS = 50;

interface InFlightCall {
  readonly deadlineMs: number;
  /** A command on the command connection, whose replies come in order (not pub/sub). */
  readonly ordered: boolean;
  settled: boolean;
  overdue: boolean;
  readonly expire: () => void;
}

/** A call held back while the command connection is stalled. */
interface StallWaiter {
  readonly deadlineMs: number;
  readonly wake: () => void;
  readonly fail: (error: StoreUnavailableError) => void;
}

/** How long close() waits for pending replies before dropping the connections. */
const CLOSE_TIMEOUT_MS = 1000;
/** Upper bound for every timeout option: longer is no fail-fast (and overflows timers past 24 days). */
export const MAX_REDIS_TIMEOUT_MS = 60_000;

function checkMs(option: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1 || value > MAX_REDIS_TIMEOUT_MS) {
    throw new RangeError(`${option} must be an integer from 1 to ${String(MAX_REDIS_TIMEOUT_MS)} ms`);
  }
  return value;
}

/** Exponential backoff from 50 ms, capped, with "equal jitter" (half fixed, half random). */
export function reconnectDelayMs(retries: number, maxDelayMs: number): number {
  const ceiling = Math.min(maxDelayMs, RECONNECT_BASE_DELAY_MS * 2 ** Math.min(retries, 16));
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}

const UNAVAILABLE_REPLIES = [
  'LOADING',
  'BUSY',
  'MASTERDOWN',
  'CLUSTERDOWN',
  'TRYAGAIN',
  'READONLY',
  'OOM',
  'MISCONF',
];

/**
 * Maps anything node-redis throws to the catalogue. Permission problems are recognised in both
 * shapes Redis uses: `NOPERM` for commands and "can't access" for a key inside a Lua script; an
 * authentication failure is a permission problem too. Everything that is not a reply from the
 * server (timeouts, closed or offline sockets, unreachable nodes) means Redis is not answering.
 */
export function toStoreError(error: unknown): GatehouseError {
  if (error instanceof GatehouseError) return error;
  // Sentinel re-emits a node's error wrapped in a plain Error; classify the reply inside.
  if (!(error instanceof ErrorReply) && error instanceof Error && error.cause instanceof ErrorReply) {
    return toStoreError(error.cause);
  }
  if (error instanceof ErrorReply) {
    const message = error.message;
    if (/^(NOPERM|NOAUTH|WRONGPASS)\b/.test(message) || /can't access/i.test(message)) {
      return new StorePermissionError(`Redis refused the ACL user: ${message}`, { cause: error });
    }
    const word = /^[A-Z]+/.exec(message)?.[0] ?? '';
    if (UNAVAILABLE_REPLIES.includes(word)) {
      return new StoreUnavailableError(`Redis is not accepting commands: ${message}`, { cause: error });
    }
    return new StoreCommandError(`Redis refused a command: ${message}`, { cause: error });
  }
  const reason = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return new StoreUnavailableError(`Redis is not answering (${reason})`, { cause: error });
}

/** A bug in the caller (bad arguments), not a store problem: never reported as an outage. */
function isProgrammingError(error: unknown): error is TypeError | RangeError {
  return error instanceof TypeError || error instanceof RangeError;
}

function isNoScript(error: unknown): boolean {
  return error instanceof ErrorReply && error.message.startsWith('NOSCRIPT');
}

/** A primary the health check can talk to. */
interface NodeHandle {
  readonly address: string;
  ping(): Promise<unknown>;
  info(): Promise<string>;
}

type ScriptArgument = string | Buffer;

/** Replies as Buffers, for scripts that return binary values (sealed payloads). */
const BINARY_REPLIES = { [RESP_TYPES.BLOB_STRING]: Buffer } as const;

/** What RedisStore needs from each topology's node-redis client. */
interface Driver {
  connect(): Promise<unknown>;
  isReady(): boolean;
  /** EVALSHA; with `binary`, bulk replies come back as Buffers instead of UTF-8 strings. */
  evalSha(sha1: string, keys: string[], args: ScriptArgument[], binary: boolean): Promise<unknown>;
  eval(source: string, keys: string[], args: ScriptArgument[], binary: boolean): Promise<unknown>;
  primaries(): Promise<NodeHandle[]>;
  /** PUBLISH, or SPUBLISH (sharded) on Cluster. */
  publish(channel: string, message: string): Promise<unknown>;
  /** SUBSCRIBE on a connection kept for it (SSUBSCRIBE on Cluster); resubscribed after reconnects. */
  subscribe(channel: string, listener: (message: string) => void): Promise<unknown>;
  unsubscribe(channel: string, listener: (message: string) => void): Promise<unknown>;
  /** DEL of keys that share a hash slot. */
  del(keys: string[]): Promise<number>;
  /** MGET with Buffer replies; the keys must share a hash slot. */
  mGetBinary(keys: string[]): Promise<Array<Buffer | null>>;
  close(): Promise<void>;
  /** Drops the connections at once, without waiting for pending replies. */
  destroy(): Promise<void>;
}

interface DriverEvents {
  readonly onError: (error: unknown) => void;
  readonly onReady: () => void;
}

/** Socket options for one connection; a fresh object each time (node-redis writes into it). */
function socketOptions(options: RedisConnectionOptions, host?: string, port?: number) {
  const maxDelay = options.reconnectMaxDelayMs ?? DEFAULT_RECONNECT_MAX_DELAY_MS;
  const common = {
    ...(host === undefined ? {} : { host }),
    ...(port === undefined ? {} : { port }),
    connectTimeout: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    reconnectStrategy: (retries: number) => reconnectDelayMs(retries, maxDelay),
  };
  if (options.tls === undefined || options.tls === false) return common;
  const material = options.tls === true ? {} : options.tls;
  return {
    ...common,
    tls: true as const,
    // Verification is always on; SNI only for names (an IP address is not a valid servername).
    rejectUnauthorized: true,
    ...(host !== undefined && isIP(host) === 0 ? { servername: host } : {}),
    ...(material.ca === undefined ? {} : { ca: material.ca }),
    ...(material.cert === undefined ? {} : { cert: material.cert }),
    ...(material.key === undefined ? {} : { key: material.key }),
  };
}

function credentials(username: string | undefined, password: string | undefined) {
  return {
    ...(username === undefined ? {} : { username }),
    ...(password === undefined ? {} : { password }),
  };
}

/**
 * node-redis's own per-command timeout is off (0): RedisStore's deadline covers every call
 * end to end, while node-redis's covers only commands not yet written, and costs a timer
 * and an AbortSignal per command.
 */
function commandOptions() {
  return { timeout: 0 };
}

function standaloneDriver(options: StandaloneOptions, events: DriverEvents): Driver {
  const client = createClient({
    socket: socketOptions(options, options.host, options.port),
    ...credentials(options.username, options.password),
    ...(options.db === undefined ? {} : { database: options.db }),
    disableOfflineQueue: true,
    commandOptions: commandOptions(),
  });
  client.on('error', events.onError);
  client.on('ready', events.onReady);
  const clientBinary = client.withTypeMapping(BINARY_REPLIES);
  // Subscribing takes a connection over; one is opened for it on first use.
  let subscriber: typeof client | undefined;
  const subscriberReady = (): Promise<typeof client> => {
    if (!subscriber) {
      subscriber = client.duplicate();
      subscriber.on('error', () => undefined);
      subscriber.connect().catch(() => undefined);
    }
    const connection = subscriber;
    if (connection.isReady) return Promise.resolve(connection);
    return new Promise((resolve) =>
      connection.once('ready', () => {
        resolve(connection);
      }),
    );
  };
  const address = `${options.host}:${String(options.port)}`;
  return {
    connect: () => client.connect(),
    isReady: () => client.isReady,
    evalSha: (sha1, keys, args, binary) =>
      (binary ? clientBinary : client).evalSha(sha1, { keys, arguments: args }),
    eval: (source, keys, args, binary) =>
      (binary ? clientBinary : client).eval(source, { keys, arguments: args }),
    mGetBinary: (keys) => clientBinary.mGet(keys),
    publish: (channel, message) => client.publish(channel, message),
    subscribe: async (channel, listener) => (await subscriberReady()).subscribe(channel, listener),
    unsubscribe: async (channel, listener) => subscriber?.unsubscribe(channel, listener),
    del: (keys) => client.del(keys),
    primaries: () => Promise.resolve([{ address, ping: () => client.ping(), info: () => client.info() }]),
    close: async () => {
      subscriber?.destroy();
      await client.close();
    },
    destroy: () => {
      subscriber?.destroy();
      client.destroy();
      return Promise.resolve();
    },
  };
}

function sentinelDriver(options: SentinelOptions, events: DriverEvents): Driver {
  const sentinel = createSentinel({
    name: options.name,
    sentinelRootNodes: options.sentinels.map((node) => ({ host: node.host, port: node.port })),
    nodeClientOptions: {
      ...credentials(options.username, options.password),
      ...(options.db === undefined ? {} : { database: options.db }),
      socket: socketOptions(options),
      disableOfflineQueue: true,
    },
    sentinelClientOptions: {
      ...credentials(options.sentinelUsername, options.sentinelPassword),
      socket: socketOptions(options),
    },
    scanInterval: options.sentinelScanIntervalMs ?? DEFAULT_SENTINEL_SCAN_INTERVAL_MS,
    commandOptions: commandOptions(),
    passthroughClientErrorEvents: true,
  });
  sentinel.on('error', events.onError);
  const sentinelBinary = sentinel.withTypeMapping(BINARY_REPLIES);
  sentinel.on('ready', events.onReady);
  return {
    connect: () => sentinel.connect(),
    isReady: () => sentinel.isReady,
    evalSha: (sha1, keys, args, binary) =>
      (binary ? sentinelBinary : sentinel).evalSha(sha1, { keys, arguments: args }),
    eval: (source, keys, args, binary) =>
      (binary ? sentinelBinary : sentinel).eval(source, { keys, arguments: args }),
    mGetBinary: (keys) => sentinelBinary.mGet(keys),
    publish: (channel, message) => sentinel.publish(channel, message),
    subscribe: (channel, listener) => sentinel.subscribe(channel, listener),
    // node-redis types this listener as string-or-Buffer; subscribe passes string messages only.
    unsubscribe: (channel, listener) =>
      sentinel.unsubscribe(channel, listener as unknown as Parameters<typeof sentinel.unsubscribe>[1]),
    del: (keys) => sentinel.del(keys),
    primaries: () => {
      const master = sentinel.getMasterNode();
      const address = master ? `${master.host}:${String(master.port)}` : 'unknown';
      return Promise.resolve([{ address, ping: () => sentinel.ping(), info: () => sentinel.info() }]);
    },
    close: () => sentinel.close(),
    destroy: () => sentinel.destroy(),
  };
}

function clusterDriver(options: ClusterOptions, events: DriverEvents): Driver {
  const cluster = createCluster({
    rootNodes: options.nodes.map((node) => ({ socket: socketOptions(options, node.host, node.port) })),
    // Settings every discovered node needs go in `defaults`, or those connections hang.
    defaults: {
      ...credentials(options.username, options.password),
      socket: socketOptions(options),
      disableOfflineQueue: true,
    },
    commandOptions: commandOptions(),
  });
  cluster.on('error', events.onError);
  const clusterBinary = cluster.withTypeMapping(BINARY_REPLIES);
  cluster.on('node-error', events.onError);
  cluster.on('node-ready', events.onReady);
  return {
    connect: () => cluster.connect(),
    isReady: () => cluster.isReady,
    evalSha: (sha1, keys, args, binary) =>
      (binary ? clusterBinary : cluster).evalSha(sha1, { keys, arguments: args }),
    eval: (source, keys, args, binary) =>
      (binary ? clusterBinary : cluster).eval(source, { keys, arguments: args }),
    mGetBinary: (keys) => clusterBinary.mGet(keys),
    publish: (channel, message) => cluster.sPublish(channel, message),
    subscribe: (channel, listener) => cluster.sSubscribe(channel, listener),
    unsubscribe: (channel, listener) => cluster.sUnsubscribe(channel, listener),
    del: (keys) => cluster.del(keys),
    primaries: async () =>
      Promise.all(
        cluster.masters.map(async (master) => {
          const client = await cluster.nodeClient(master);
          return {
            address: `${master.host}:${String(master.port)}`,
            ping: () => client.ping(),
            info: () => client.info(),
          };
        }),
      ),
    close: () => cluster.close(),
    destroy: () => {
      cluster.destroy();
      return Promise.resolve();
    },
  };
}

function parseInfo(text: string): ServerInfo {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0 && !line.startsWith('#')) fields.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  const number = (name: string) => Number(fields.get(name) ?? '0') || 0;
  return {
    version: fields.get('redis_version') ?? 'unknown',
    role: fields.get('role') ?? 'unknown',
    uptimeSeconds: number('uptime_in_seconds'),
    usedMemoryBytes: number('used_memory'),
    maxMemoryBytes: number('maxmemory'),
    maxMemoryPolicy: fields.get('maxmemory_policy') ?? 'unknown',
    connectedClients: number('connected_clients'),
    keyspaceHits: number('keyspace_hits'),
    keyspaceMisses: number('keyspace_misses'),
    evictedKeys: number('evicted_keys'),
  };
}

type Deadline = <T>(call: () => Promise<T>) => Promise<T>;

async function nodeHealth(node: NodeHandle, withDeadline: Deadline): Promise<StoreNodeHealth> {
  const started = performance.now();
  try {
    await withDeadline(() => node.ping());
  } catch {
    return { address: node.address, status: 'down', latencyMs: null, info: 'unavailable' };
  }
  const latencyMs = Math.round((performance.now() - started) * 100) / 100;
  let info: StoreNodeHealth['info'];
  try {
    info = parseInfo(await withDeadline(() => node.info()));
  } catch (error) {
    info = toStoreError(error) instanceof StorePermissionError ? 'not-permitted' : 'unavailable';
  }
  return { address: node.address, status: 'up', latencyMs, info };
}

const PROBE_SCRIPT = defineScript('probeReadWrite', 1);
const CREATE_SESSION = defineScript('createSession', 4);
const VALIDATE_SESSION = defineScript('validateSession', 4);
const TOUCH_SESSION = defineScript('touchSession', 3);
const REVOKE_SESSION = defineScript('revokeSession', 4);
const REVOKE_USER_SESSIONS = defineScript('revokeUserSessions', 3);
const LIST_SESSIONS = defineScript('listSessions', 3);
const ROTATE_SESSION = defineScript('rotateSession', 5);
const RESTORE_SESSION = defineScript('restoreSession', 4);
const SET_MARKER = defineScript('setMarker', 1);
const TAKE_MARKER = defineScript('takeMarker', 1);
const GET_MARKER = defineScript('getMarker', 1);
const BEGIN_IDEMPOTENT = defineScript('beginIdempotent', 1);
const COMPLETE_IDEMPOTENT = defineScript('completeIdempotent', 1);
const ABANDON_IDEMPOTENT = defineScript('abandonIdempotent', 1);
const CHECK_RATE_LIMITS = defineScript('checkRateLimits', 'variadic');
const ACQUIRE_LOCKS = defineScript('acquireLocks', 'variadic');
const EXTEND_LOCKS = defineScript('extendLocks', 'variadic');
const RELEASE_LOCKS = defineScript('releaseLocks', 'variadic');
const ACQUIRE_SEMAPHORE = defineScript('acquireSemaphore', 2);
const EXTEND_SEMAPHORE = defineScript('extendSemaphore', 2);
const RELEASE_SEMAPHORE = defineScript('releaseSemaphore', 1);

/**
 * Rate-limit checks of one turn of the event loop share a script call, up to this many checks
 * and keys: enough to spend one call on a burst, few enough that a script stays well under a
 * millisecond on the server.
 */
const RATE_LIMIT_BATCH_CHECKS = 64;
const RATE_LIMIT_BATCH_KEYS = 256;

/** Lock calls of one turn of the event loop share a script call per hash slot, up to this many. */
const LOCK_BATCH_CALLS = 64;

/** One lock operation as the batch scripts take it. */
interface LockCall {
  readonly resourceId: string;
  readonly ownerId: string;
  readonly ttlMs: number;
  readonly holder: string;
}

interface RateLimitResult {
  readonly admitted: boolean;
  readonly nowMs: number;
  readonly states: RateLimitState[];
}

function asBuffer(script: LuaScript, value: unknown): Buffer {
  if (!Buffer.isBuffer(value)) throw unexpectedReply(script, value);
  return value;
}

function asStrings(script: LuaScript, value: unknown): string[] {
  if (!Array.isArray(value)) throw unexpectedReply(script, value);
  return value.map((item: unknown) => (Buffer.isBuffer(item) ? item.toString() : String(item)));
}

function asReason(value: unknown): SessionEndReason | null {
  const text = Buffer.isBuffer(value) ? value.toString() : String(value);
  return SESSION_END_REASONS.find((reason) => reason === text) ?? null;
}

export class RedisStore implements Store {
  readonly mode: RedisConnectionOptions['topology'];
  readonly keys: KeySpace;
  private readonly logger: Logger;
  private readonly driver: Driver;
  private readonly commandTimeoutMs: number;
  private readonly reconnectMaxDelayMs: number;
  private overdueCalls = 0;
  /** Overdue calls on the command connection (ordered replies): while any, it is stalled. */
  private overdueOrderedCalls = 0;
  /** Calls waiting for a stall to clear (standalone), failed by the sweeper after their grace. */
  private readonly stallWaiters = new Set<StallWaiter>();
  /** Calls waiting on Redis, checked against their deadlines by one sweeper timer. */
  private readonly inFlight = new Set<InFlightCall>();
  private sweeper: NodeJS.Timeout | undefined;
  private readonly firstReady: Promise<void>;
  private markFirstReady: () => void = () => undefined;
  private connectionLost = false;
  /** Why the last connection attempt failed, while not connected; cleared on ready. */
  private lastConnectionError: GatehouseError | undefined;
  private closed = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly rateLimitBatcher = new Batcher<readonly RateLimitRule[], RateLimitResult>({
    run: (requests) => this.checkRateLimitBatch(requests),
    maxCalls: RATE_LIMIT_BATCH_CHECKS,
    maxWeight: RATE_LIMIT_BATCH_KEYS,
    weigh: (rules) => rules.length,
  });

  private readonly lockAcquires = this.lockBatcher((calls) => this.acquireLockBatch(calls));
  private readonly lockExtends = this.lockBatcher((calls) => this.extendLockBatch(calls));
  private readonly lockReleases = this.lockBatcher((calls) => this.releaseLockBatch(calls));

  constructor(options: RedisStoreOptions) {
    this.mode = options.connection.topology;
    this.keys = new KeySpace(options.keyPrefix);
    this.logger = options.logger ?? silentLogger;
    this.commandTimeoutMs = checkMs(
      'commandTimeoutMs',
      options.connection.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS,
    );
    this.reconnectMaxDelayMs = checkMs(
      'reconnectMaxDelayMs',
      options.connection.reconnectMaxDelayMs ?? DEFAULT_RECONNECT_MAX_DELAY_MS,
    );
    checkMs('connectTimeoutMs', options.connection.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS);
    this.firstReady = new Promise((resolve) => {
      this.markFirstReady = resolve;
    });
    const events: DriverEvents = {
      onError: (error) => {
        this.onConnectionError(error);
      },
      onReady: () => {
        this.onConnectionReady();
      },
    };
    const connection = options.connection;
    this.driver =
      connection.topology === 'standalone'
        ? standaloneDriver(connection, events)
        : connection.topology === 'sentinel'
          ? sentinelDriver(connection, events)
          : clusterDriver(connection, events);
    this.startConnecting(0);
  }

  isReady(): boolean {
    return !this.closed && this.driver.isReady();
  }

  async waitUntilReady(timeoutMs: number): Promise<void> {
    if (this.closed) throw new StoreUnavailableError('the store is closed');
    if (this.isReady()) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new StoreUnavailableError(`Redis did not become ready within ${String(timeoutMs)} ms`));
      }, timeoutMs);
    });
    try {
      await Promise.race([this.firstReady, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async probeReadWrite(probeId: string, value: string, ttlMs: number): Promise<ProbeResult> {
    assertTtlMs(ttlMs);
    const reply = await this.runScript(
      PROBE_SCRIPT,
      [this.keys.key('health', 'probe', probeId)],
      [value, String(ttlMs)],
    );
    if (!Array.isArray(reply) || reply.length !== 3) throw unexpectedReply(PROBE_SCRIPT, reply);
    const [readBack, seconds, micros] = reply as unknown[];
    return {
      value: String(readBack),
      serverTimeMs: Number(seconds) * 1000 + Math.floor(Number(micros) / 1000),
    };
  }

  async sessionCreate(
    ref: SessionRef,
    payload: Buffer,
    limits: SessionLimits,
  ): Promise<{ session: StoredSession; evicted: string[] }> {
    const keys = sessionKeys(this.keys, ref);
    const reply = await this.runScript(
      CREATE_SESSION,
      [keys.session, keys.index, keys.deadlines, keys.ended],
      [
        ref.tokenHash,
        payload,
        String(limits.idleTimeoutMs),
        String(limits.absoluteTimeoutMs),
        String(limits.maxPerUser),
        String(limits.reasonTtlMs),
      ],
      true,
    );
    if (!Array.isArray(reply) || reply.length === 0) throw unexpectedReply(CREATE_SESSION, reply);
    const [value, ...evicted] = reply as unknown[];
    return {
      session: decodeSessionValue(ref.tokenHash, asBuffer(CREATE_SESSION, value)),
      evicted: asStrings(CREATE_SESSION, evicted),
    };
  }

  async sessionValidate(ref: SessionRef, options: SessionValidateOptions): Promise<SessionValidation> {
    const keys = sessionKeys(this.keys, ref);
    const reply = await this.runScript(
      VALIDATE_SESSION,
      [keys.session, keys.index, keys.deadlines, keys.ended],
      [
        ref.tokenHash,
        String(options.touchIntervalMs),
        String(options.pendingCount),
        String(options.reasonTtlMs),
        String(options.absoluteTimeoutMs),
      ],
      true,
    );
    if (!Array.isArray(reply)) throw unexpectedReply(VALIDATE_SESSION, reply);
    const [live, value, touchedOrExpired, nowMs] = reply as unknown[];
    if (live !== 1) {
      const reason = asReason(value);
      return Buffer.isBuffer(touchedOrExpired)
        ? { session: null, reason, expired: decodeSessionValue(ref.tokenHash, touchedOrExpired) }
        : { session: null, reason };
    }
    return {
      session: decodeSessionValue(ref.tokenHash, asBuffer(VALIDATE_SESSION, value)),
      touched: touchedOrExpired === 1,
      nowMs: Number(nowMs),
    };
  }

  async sessionTouch(ref: SessionRef, addCount: number, lastSeenAtMs: number): Promise<boolean> {
    const keys = sessionKeys(this.keys, ref);
    const reply = await this.runScript(
      TOUCH_SESSION,
      [keys.session, keys.index, keys.deadlines],
      [ref.tokenHash, String(addCount), String(lastSeenAtMs)],
    );
    return reply === 1;
  }

  async sessionRevoke(
    ref: SessionRef,
    reason: SessionEndReason,
    reasonTtlMs: number,
  ): Promise<{ ended: boolean; session: StoredSession | null }> {
    const keys = sessionKeys(this.keys, ref);
    const reply = await this.runScript(
      REVOKE_SESSION,
      [keys.session, keys.index, keys.deadlines, keys.ended],
      [ref.tokenHash, reason, String(reasonTtlMs)],
      true,
    );
    if (!Array.isArray(reply)) throw unexpectedReply(REVOKE_SESSION, reply);
    const [ended, value] = reply as unknown[];
    return {
      ended: ended === 1,
      session: Buffer.isBuffer(value) ? decodeSessionValue(ref.tokenHash, value) : null,
    };
  }

  async sessionRevokeAll(
    uid: string,
    exceptTokenHash: string | null,
    reason: SessionEndReason,
    reasonTtlMs: number,
  ): Promise<string[]> {
    const keys = userKeys(this.keys, uid);
    const reply = await this.runScript(
      REVOKE_USER_SESSIONS,
      [keys.index, keys.deadlines, keys.ended],
      [exceptTokenHash ?? '', reason, String(reasonTtlMs)],
    );
    return asStrings(REVOKE_USER_SESSIONS, reply);
  }

  async sessionDiscard(uid: string, tokenHashes: readonly string[]): Promise<void> {
    if (tokenHashes.length === 0) return;
    const names = tokenHashes.map((tokenHash) => sessionKey(this.keys, { uid, tokenHash }));
    // One user's keys share a hash tag: one DEL, even on Cluster.
    await this.withDeadline(() => this.driver.del(names));
  }

  async sessionList(uid: string, limits: SessionLimits): Promise<StoredSession[]> {
    const keys = userKeys(this.keys, uid);
    const reply = await this.runScript(
      LIST_SESSIONS,
      [keys.index, keys.deadlines, keys.ended],
      [String(limits.absoluteTimeoutMs), String(limits.reasonTtlMs)],
    );
    const tokenHashes = asStrings(LIST_SESSIONS, reply);
    if (tokenHashes.length === 0) return [];
    const sessionKeyNames = tokenHashes.map((tokenHash) => sessionKey(this.keys, { uid, tokenHash }));
    // All of one user's keys share a hash tag, so one MGET reads them even on Cluster.
    const values = await this.withDeadline(() => this.driver.mGetBinary(sessionKeyNames));
    const sessions: StoredSession[] = [];
    values.forEach((value, index) => {
      const tokenHash = tokenHashes[index];
      if (Buffer.isBuffer(value) && tokenHash !== undefined)
        sessions.push(decodeSessionValue(tokenHash, value));
    });
    return sessions;
  }

  async sessionRestore(ref: SessionRef, session: StoredSession, limits: SessionLimits): Promise<boolean> {
    const keys = sessionKeys(this.keys, ref);
    const reply = await this.runScript(
      RESTORE_SESSION,
      [keys.session, keys.index, keys.deadlines, keys.ended],
      [ref.tokenHash, encodeSessionValue(session), String(limits.absoluteTimeoutMs + limits.reasonTtlMs)],
    );
    return reply === 1;
  }

  async sessionRotate(
    ref: SessionRef,
    newTokenHash: string,
    payload: Buffer,
    reasonTtlMs: number,
  ): Promise<StoredSession | null> {
    const keys = sessionKeys(this.keys, ref);
    const newKey = sessionKey(this.keys, { uid: ref.uid, tokenHash: newTokenHash });
    const reply = await this.runScript(
      ROTATE_SESSION,
      [keys.session, newKey, keys.index, keys.deadlines, keys.ended],
      [ref.tokenHash, newTokenHash, payload, String(reasonTtlMs)],
      true,
    );
    if (!Array.isArray(reply)) throw unexpectedReply(ROTATE_SESSION, reply);
    const [rotated, value] = reply as unknown[];
    return rotated === 1 ? decodeSessionValue(newTokenHash, asBuffer(ROTATE_SESSION, value)) : null;
  }

  async publish(channel: string, message: string): Promise<void> {
    await this.withDeadline(() => this.driver.publish(channel, message));
  }

  async subscribe(channel: string, listener: (message: string) => void): Promise<() => Promise<void>> {
    // On a connection of their own, which may lag behind the command connection's: not ordered.
    await this.withDeadline(() => this.driver.subscribe(channel, listener), false);
    return async () => {
      if (this.closed) return;
      await this.withDeadline(() => this.driver.unsubscribe(channel, listener), false);
    };
  }

  async setMarker(
    area: MarkerArea,
    id: string,
    value: string,
    ttlMs: number,
    mode: MarkerMode,
  ): Promise<boolean> {
    assertTtlMs(ttlMs);
    const reply = await this.runScript(SET_MARKER, [this.keys.key(area, id)], [value, String(ttlMs), mode]);
    return reply === 1;
  }

  async takeMarker(area: MarkerArea, id: string): Promise<string | null> {
    const reply = await this.runScript(TAKE_MARKER, [this.keys.key(area, id)], []);
    return typeof reply === 'string' && reply !== '' ? reply : null;
  }

  async getMarker(area: MarkerArea, id: string): Promise<string | null> {
    const reply = await this.runScript(GET_MARKER, [this.keys.key(area, id)], []);
    return typeof reply === 'string' && reply !== '' ? reply : null;
  }

  async idempotencyBegin(id: string, bodyMac: string, inFlightTtlMs: number): Promise<IdempotencyBegin> {
    assertTtlMs(inFlightTtlMs);
    const reply = await this.runScript(
      BEGIN_IDEMPOTENT,
      [this.keys.key('idem', id)],
      [bodyMac, String(inFlightTtlMs)],
      true,
    );
    if (!Array.isArray(reply)) throw unexpectedReply(BEGIN_IDEMPOTENT, reply);
    const [state, response] = reply as unknown[];
    const name = Buffer.isBuffer(state) ? state.toString() : String(state);
    if (name === 'replay') return { state: 'replay', response: asBuffer(BEGIN_IDEMPOTENT, response) };
    if (name === 'started' || name === 'in-progress' || name === 'mismatch') return { state: name };
    throw unexpectedReply(BEGIN_IDEMPOTENT, reply);
  }

  async idempotencyComplete(id: string, bodyMac: string, response: Buffer, ttlMs: number): Promise<boolean> {
    assertTtlMs(ttlMs);
    const reply = await this.runScript(
      COMPLETE_IDEMPOTENT,
      [this.keys.key('idem', id)],
      [bodyMac, response, String(ttlMs)],
    );
    return reply === 1;
  }

  async idempotencyAbandon(id: string, bodyMac: string): Promise<boolean> {
    const reply = await this.runScript(ABANDON_IDEMPOTENT, [this.keys.key('idem', id)], [bodyMac]);
    return reply === 1;
  }

  /**
   * Checks made in the same turn of the event loop go to Redis together, in one script call that
   * handles them one after the other: the same results as one call each, at a fraction of the
   * cost per check on both sides. All rate-limit keys share the `{rl}` hash tag, so any batch is
   * one Cluster slot.
   */
  async rateLimitCheck(rules: readonly RateLimitRule[]): Promise<RateLimitResult> {
    // Checked here, not in the batch: one bad call must not fail the calls batched with it.
    assertRateLimitRules(rules);
    return this.rateLimitBatcher.add(rules);
  }

  private async checkRateLimitBatch(
    requests: readonly (readonly RateLimitRule[])[],
  ): Promise<RateLimitResult[]> {
    const keys: string[] = [];
    const args: string[] = [String(requests.length)];
    for (const rules of requests) {
      args.push(String(rules.length));
      for (const rule of rules) {
        keys.push(this.keys.tagged('rl', 'rl', rule.id));
        args.push(String(rule.intervalMs), String(rule.toleranceMs));
      }
    }
    const reply = await this.runScript(CHECK_RATE_LIMITS, keys, args);
    if (!Array.isArray(reply) || reply.length !== 1 + requests.length + keys.length)
      throw unexpectedReply(CHECK_RATE_LIMITS, reply);
    const numbers = (reply as unknown[]).map(Number);
    const nowMs = numbers[0] ?? 0;
    let at = 1;
    return requests.map((rules) => {
      const admitted = numbers[at] === 1;
      const states = rules.map((rule, i) => rateLimitState(rule, admitted, numbers[at + 1 + i] ?? 0));
      at += 1 + rules.length;
      return { admitted, nowMs, states };
    });
  }

  /**
   * Lock calls made in the same turn of the event loop go to Redis together, one script call per
   * operation and hash slot, which handles them one after the other: the results of one call
   * each, for a fraction of the cost per call.
   */
  async lockAcquire(
    resourceId: string,
    ownerId: string,
    ttlMs: number,
    holder: string,
  ): Promise<LockAcquireResult> {
    assertLockArguments(ttlMs, holder);
    return this.addLockCall(this.lockAcquires, resourceId, ownerId, ttlMs, holder);
  }

  async lockExtend(resourceId: string, ownerId: string, ttlMs: number): Promise<LockExtendResult> {
    assertTtlMs(ttlMs);
    return this.addLockCall(this.lockExtends, resourceId, ownerId, ttlMs, '');
  }

  lockRelease(resourceId: string, ownerId: string): Promise<boolean> {
    return this.addLockCall(this.lockReleases, resourceId, ownerId, 1, '');
  }

  private addLockCall<Out>(
    batcher: GroupedBatcher<LockCall, Out>,
    resourceId: string,
    ownerId: string,
    ttlMs: number,
    holder: string,
  ): Promise<Out> {
    const call = { resourceId, ownerId, ttlMs, holder };
    // Only Cluster restricts a script to one slot; elsewhere every call may share a batch. Every
    // key of a resource carries its id as hash tag, so the tag alone gives the slot.
    return batcher.add(this.mode === 'cluster' ? keySlot(`{${resourceId}}`) : 0, call);
  }

  private lockBatcher<Out>(
    run: (calls: readonly LockCall[]) => Promise<Out[]>,
  ): GroupedBatcher<LockCall, Out> {
    return new GroupedBatcher<LockCall, Out>({
      run,
      maxCalls: LOCK_BATCH_CALLS,
      maxWeight: LOCK_BATCH_CALLS,
      weigh: () => 1,
    });
  }

  private async acquireLockBatch(calls: readonly LockCall[]): Promise<LockAcquireResult[]> {
    const reply = await this.runScript(
      ACQUIRE_LOCKS,
      calls.flatMap((call) => [
        this.keys.tagged('lock', call.resourceId, 'm'),
        this.keys.tagged('lock', call.resourceId, 'f'),
      ]),
      [
        String(calls.length),
        ...calls.flatMap((call) => [
          call.ownerId,
          String(call.ttlMs),
          call.holder,
          String(call.ttlMs + FENCE_TTL_EXTRA_MS),
        ]),
      ],
    );
    if (!Array.isArray(reply) || reply.length !== 3 * calls.length)
      throw unexpectedReply(ACQUIRE_LOCKS, reply);
    const values = reply as unknown[];
    return calls.map((_, i) => lockAcquireResult(ACQUIRE_LOCKS, values.slice(3 * i, 3 * i + 3)));
  }

  private async extendLockBatch(calls: readonly LockCall[]): Promise<LockExtendResult[]> {
    const reply = await this.runScript(
      EXTEND_LOCKS,
      calls.flatMap((call) => [
        this.keys.tagged('lock', call.resourceId, 'm'),
        this.keys.tagged('lock', call.resourceId, 'f'),
      ]),
      [
        String(calls.length),
        ...calls.flatMap((call) => [
          call.ownerId,
          String(call.ttlMs),
          String(call.ttlMs + FENCE_TTL_EXTRA_MS),
        ]),
      ],
    );
    if (!Array.isArray(reply) || reply.length !== 2 * calls.length)
      throw unexpectedReply(EXTEND_LOCKS, reply);
    const values = reply as unknown[];
    return calls.map((_, i): LockExtendResult => {
      const fencingToken = values[2 * i + 1];
      if (values[2 * i] !== 1) return { extended: false };
      if (typeof fencingToken !== 'number') throw unexpectedReply(EXTEND_LOCKS, reply);
      return { extended: true, fencingToken };
    });
  }

  private async releaseLockBatch(calls: readonly LockCall[]): Promise<boolean[]> {
    const reply = await this.runScript(
      RELEASE_LOCKS,
      calls.map((call) => this.keys.tagged('lock', call.resourceId, 'm')),
      calls.map((call) => call.ownerId),
    );
    if (!Array.isArray(reply) || reply.length !== calls.length) throw unexpectedReply(RELEASE_LOCKS, reply);
    return (reply as unknown[]).map((value) => value === 1);
  }

  async semaphoreAcquire(
    resourceId: string,
    ownerId: string,
    limit: number,
    ttlMs: number,
  ): Promise<LockAcquireResult> {
    assertLockArguments(ttlMs, '', limit);
    const reply = await this.runScript(
      ACQUIRE_SEMAPHORE,
      [this.keys.tagged('lock', resourceId, 's'), this.keys.tagged('lock', resourceId, 'f')],
      [ownerId, String(ttlMs), String(limit), String(ttlMs + FENCE_TTL_EXTRA_MS)],
    );
    return lockAcquireResult(ACQUIRE_SEMAPHORE, reply);
  }

  async semaphoreExtend(resourceId: string, ownerId: string, ttlMs: number): Promise<boolean> {
    assertTtlMs(ttlMs);
    const reply = await this.runScript(
      EXTEND_SEMAPHORE,
      [this.keys.tagged('lock', resourceId, 's'), this.keys.tagged('lock', resourceId, 'f')],
      [ownerId, String(ttlMs), String(ttlMs + FENCE_TTL_EXTRA_MS)],
    );
    return reply === 1;
  }

  async semaphoreRelease(resourceId: string, ownerId: string): Promise<boolean> {
    const reply = await this.runScript(
      RELEASE_SEMAPHORE,
      [this.keys.tagged('lock', resourceId, 's')],
      [ownerId],
    );
    return reply === 1;
  }

  async health(): Promise<StoreHealth> {
    let nodes: StoreNodeHealth[];
    try {
      const primaries = await this.withDeadline(() => this.driver.primaries());
      nodes = await Promise.all(primaries.map((node) => nodeHealth(node, (call) => this.withDeadline(call))));
    } catch {
      nodes = [];
    }
    const up = nodes.filter((node) => node.status === 'up');
    const latencies = up.map((node) => node.latencyMs ?? 0);
    return {
      status: up.length === 0 ? 'down' : up.length === nodes.length ? 'up' : 'degraded',
      mode: this.mode,
      latencyMs: latencies.length === 0 ? null : Math.max(...latencies),
      nodes,
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.sweeper);
    this.sweeper = undefined;
    for (const waiter of this.stallWaiters) waiter.fail(new StoreUnavailableError('the store is closed'));
    this.stallWaiters.clear();
    // A graceful close waits for every pending reply: never while disconnected (a connection
    // may never come) or stalled (overdue replies may never come), and never for long.
    if (!this.driver.isReady() || this.overdueCalls > 0) {
      await this.driver.destroy();
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const graceful = this.driver.close().then(
      () => true,
      () => false,
    );
    const timedOut = new Promise<false>((resolve) => {
      timer = setTimeout(() => {
        resolve(false);
      }, CLOSE_TIMEOUT_MS);
    });
    const closed = await Promise.race([graceful, timedOut]);
    clearTimeout(timer);
    if (!closed) await this.driver.destroy();
  }

  /**
   * Runs a script with EVALSHA, and with EVAL when the node does not have it cached (NOSCRIPT).
   * The number of keys is checked so that keys never travel in ARGV, where Cluster routing and
   * ACL key patterns could not see them.
   */
  protected runScript(
    script: LuaScript,
    keys: string[],
    args: ScriptArgument[],
    binary = false,
  ): Promise<unknown> {
    if (script.numberOfKeys === 'variadic' ? keys.length === 0 : keys.length !== script.numberOfKeys) {
      return Promise.reject(
        new TypeError(`${script.name} takes ${String(script.numberOfKeys)} keys, got ${String(keys.length)}`),
      );
    }
    // Plain promise chains rather than async functions: this is the hot path of every operation.
    return this.withDeadline(() =>
      this.driver
        .evalSha(script.sha1, keys, args, binary)
        .catch((error: unknown) =>
          isNoScript(error)
            ? this.driver.eval(script.source, keys, args, binary)
            : Promise.reject(error as Error),
        ),
    );
  }

  /**
   * Runs one call against Redis with the command timeout as a hard deadline. node-redis's own
   * timeout only covers a command still waiting to be written; once written, a stalled server
   * would hold it forever. The deadline answers the caller on time; the command itself may still
   * run later (it cannot be recalled), which is why locks expire and nonces stay spent.
   *
   * One sweeper timer serves every call in flight (a timer per call costs more than the call's
   * own client work at high rates); a deadline fires at most DEADLINE_SWEEP_MS late.
   *
   * Standalone has one command connection, whose replies come in order: while a command on it
   * is past its deadline and unanswered, no later command can be answered before it. New calls
   * are then not sent: each waits up to STALL_GRACE_MS for the overdue replies (or the
   * connection closing) to end the stall, and is refused after that, instead of each waiting out
   * a deadline of its own (a request that makes three calls would take three deadlines) and
   * piling work onto the server for when it wakes up. Sentinel and Cluster keep only the
   * MAX_OVERDUE_CALLS cap: their commands may go to another node than the overdue ones.
   */
  private withDeadline<T>(call: () => Promise<T>, ordered = true): Promise<T> {
    if (this.closed) return Promise.reject(new StoreUnavailableError('the store is closed'));
    if (ordered && this.mode === 'standalone' && this.overdueOrderedCalls > 0) {
      return this.stallCleared().then(() => this.send(call, ordered));
    }
    return this.send(call, ordered);
  }

  /** Resolves when the command connection's overdue replies are in; fails after the grace. */
  private stallCleared(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.stallWaiters.add({
        deadlineMs: performance.now() + Math.min(STALL_GRACE_MS, this.commandTimeoutMs),
        wake: resolve,
        fail: reject,
      });
      this.startSweeper();
    });
  }

  private send<T>(call: () => Promise<T>, ordered: boolean): Promise<T> {
    if (this.closed) return Promise.reject(new StoreUnavailableError('the store is closed'));
    if (this.overdueCalls >= MAX_OVERDUE_CALLS) {
      return Promise.reject(
        new StoreUnavailableError(
          `Redis is stalled: ${String(this.overdueCalls)} calls are past their deadline; not sending more`,
        ),
      );
    }
    return new Promise<T>((resolve, reject) => {
      const entry: InFlightCall = {
        deadlineMs: performance.now() + this.commandTimeoutMs,
        ordered,
        settled: false,
        overdue: false,
        expire: () => {
          reject(
            new StoreUnavailableError(`Redis did not answer within ${String(this.commandTimeoutMs)} ms`),
          );
        },
      };
      const fail = (error: unknown) => {
        reject(isProgrammingError(error) ? error : this.explain(toStoreError(error)));
      };
      let pending: Promise<T>;
      try {
        pending = call();
      } catch (error) {
        fail(error);
        return;
      }
      this.inFlight.add(entry);
      this.startSweeper();
      pending.then(
        (value) => {
          this.finish(entry);
          if (!entry.overdue) resolve(value);
        },
        (error: unknown) => {
          this.finish(entry);
          if (!entry.overdue) fail(error);
        },
      );
    });
  }

  private finish(entry: InFlightCall): void {
    entry.settled = true;
    this.inFlight.delete(entry);
    if (!entry.overdue) return;
    this.overdueCalls--;
    if (entry.ordered && --this.overdueOrderedCalls === 0) {
      for (const waiter of this.stallWaiters) waiter.wake();
      this.stallWaiters.clear();
    }
  }

  private startSweeper(): void {
    if (this.sweeper) return;
    this.sweeper = setInterval(() => {
      this.sweepDeadlines();
    }, DEADLINE_SWEEP_MS);
    this.sweeper.unref();
  }

  /** Fails every call past its deadline or stall grace; stops when nothing is in flight. */
  private sweepDeadlines(): void {
    const now = performance.now();
    for (const entry of this.inFlight) {
      if (!entry.overdue && !entry.settled && now >= entry.deadlineMs) {
        entry.overdue = true;
        this.overdueCalls++;
        if (entry.ordered) this.overdueOrderedCalls++;
        entry.expire();
      }
    }
    for (const waiter of this.stallWaiters) {
      if (now < waiter.deadlineMs) continue;
      this.stallWaiters.delete(waiter);
      waiter.fail(
        new StoreUnavailableError(
          `Redis is stalled: a command has waited over ${String(this.commandTimeoutMs)} ms for its reply`,
        ),
      );
    }
    if (this.inFlight.size === 0 && this.stallWaiters.size === 0) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  /**
   * While disconnected, "the client is offline" hides the real cause: a refused password or
   * ACL user is reported as the permission problem it is (retrying will not fix it), and an
   * outage carries the last connection error (a refused certificate, say) for the operator.
   */
  private explain(error: GatehouseError): GatehouseError {
    const cause = this.lastConnectionError;
    if (!(error instanceof StoreUnavailableError) || cause === undefined || this.driver.isReady())
      return error;
    if (cause instanceof StorePermissionError) return cause;
    return new StoreUnavailableError(`${error.message}; last connection error: ${cause.message}`, {
      cause: error,
    });
  }

  /** Starts connecting; when a topology client gives up (cluster or sentinel discovery), tries again later. */
  private startConnecting(attempt: number): void {
    this.driver.connect().then(
      () => {
        // Closed while connecting: what the connection attempt opened must not outlive the store.
        if (this.closed) {
          void this.driver.destroy();
          return;
        }
        this.onConnectionReady();
      },
      (error: unknown) => {
        if (this.closed) {
          void this.driver.destroy();
          return;
        }
        this.onConnectionError(error);
        const delay = reconnectDelayMs(attempt, this.reconnectMaxDelayMs);
        this.retryTimer = setTimeout(() => {
          this.startConnecting(attempt + 1);
        }, delay);
        this.retryTimer.unref();
      },
    );
  }

  private onConnectionReady(): void {
    // Node-level events (a Cluster node, a Sentinel topology change) may come before the whole
    // client can take commands: only a client that says it is ready counts.
    if (this.closed || !this.driver.isReady()) return;
    this.lastConnectionError = undefined;
    this.markFirstReady();
    if (this.connectionLost) {
      this.connectionLost = false;
      this.logger.info({ mode: this.mode }, 'Redis connection restored');
    }
  }

  /** Logs once per outage, not once per reconnect attempt. */
  private onConnectionError(error: unknown): void {
    if (this.closed) return;
    if (!this.driver.isReady()) this.lastConnectionError = toStoreError(error);
    if (this.connectionLost) return;
    this.connectionLost = true;
    const reason = error instanceof Error ? error.message : String(error);
    this.logger.warn(
      { mode: this.mode, reason },
      'Redis connection lost; commands fail fast until it returns',
    );
  }
}

/**
 * One acquire's `{1, fencing token, ...}` or `{0, ms left, holder label (a lock) or holder count
 * (a semaphore)}`.
 */
function lockAcquireResult(script: LuaScript, reply: unknown): LockAcquireResult {
  if (!Array.isArray(reply)) throw unexpectedReply(script, reply);
  const [acquired, value, extra] = reply as unknown[];
  if (typeof value !== 'number') throw unexpectedReply(script, reply);
  if (acquired === 1) return { acquired: true, fencingToken: value };
  if (typeof extra === 'number') {
    return { acquired: false, retryAfterMs: Math.max(0, value), holder: null, holders: extra };
  }
  const label = typeof extra === 'string' ? extra : '';
  return {
    acquired: false,
    retryAfterMs: Math.max(0, value),
    holder: label === '' ? null : label,
    holders: 1,
  };
}

function unexpectedReply(script: LuaScript, reply: unknown): StoreCommandError {
  return new StoreCommandError(`${script.name} returned an unexpected reply: ${JSON.stringify(reply)}`);
}
