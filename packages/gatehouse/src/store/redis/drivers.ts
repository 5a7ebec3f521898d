/**
 * One node-redis client per topology (standalone, Sentinel, Cluster) behind the one Driver
 * interface the connection uses (./connection.ts).
 *
 * Fail fast (see docs/architecture.md): the offline queue is off, node-redis's own per-command
 * timeout is off (./deadlines.ts bounds every call), and reconnects back off exponentially from
 * 50 ms up to a cap, with jitter so a fleet of instances does not reconnect in lockstep.
 */
import { isIP } from 'node:net';

import { createClient, createCluster, createSentinel, RESP_TYPES } from '@redis/client';

import {
  isLoopbackHost,
  type ClusterOptions,
  type RedisConnectionOptions,
  type SentinelOptions,
  type StandaloneOptions,
} from '../options.js';

export const DEFAULT_CONNECT_TIMEOUT_MS = 2000;
export const DEFAULT_RECONNECT_MAX_DELAY_MS = 2000;
export const DEFAULT_SENTINEL_SCAN_INTERVAL_MS = 2000;
const RECONNECT_BASE_DELAY_MS = 50;

/** Exponential backoff from 50 ms, capped, with "equal jitter" (half fixed, half random). */
export function reconnectDelayMs(retries: number, maxDelayMs: number): number {
  const ceiling = Math.min(maxDelayMs, RECONNECT_BASE_DELAY_MS * 2 ** Math.min(retries, 16));
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}

/** A primary the health check can talk to. */
export interface NodeHandle {
  readonly address: string;
  ping(): Promise<unknown>;
  info(): Promise<string>;
}

export type ScriptArgument = string | Buffer;

/** Replies as Buffers, for scripts that return binary values (sealed payloads). */
const BINARY_REPLIES = { [RESP_TYPES.BLOB_STRING]: Buffer } as const;

/** What the connection needs from each topology's node-redis client. */
export interface Driver {
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

export interface DriverEvents {
  readonly onError: (error: unknown) => void;
  readonly onReady: () => void;
}

/**
 * A `nodeAddressMap` for Sentinel and Cluster that refuses plaintext connections off loopback
 * when `requireTlsOffLoopback` is set: a discovered node (a primary Sentinel names, a node in
 * CLUSTER SLOTS) at another address is reported once and mapped to 127.0.0.1 port 0, which
 * refuses at once, so no byte goes to it in clear. Without reconnecting: a Cluster client whose
 * node never connects would otherwise never finish connecting, and never ask again for the
 * slots (which may name a loopback node by then). Undefined when nothing needs refusing.
 */
function plaintextGuard(
  options: RedisConnectionOptions,
  events: DriverEvents,
): ((address: string) => { host: string; port: number; reconnectStrategy: false } | undefined) | undefined {
  const plaintext = options.tls === undefined || options.tls === false;
  if (!plaintext || options.requireTlsOffLoopback !== true) return undefined;
  const reported = new Set<string>();
  return (address) => {
    const host = address.slice(0, address.lastIndexOf(':')).replace(/^\[(.*)\]$/, '$1');
    if (isLoopbackHost(host)) return undefined;
    if (!reported.has(address)) {
      reported.add(address);
      events.onError(
        new Error(
          `refused a plaintext connection to ${address}, a node the ${options.topology} named: TLS is required off loopback`,
        ),
      );
    }
    return { host: '127.0.0.1', port: 0, reconnectStrategy: false };
  };
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
 * node-redis's own per-command timeout is off (0): the connection's deadline (./deadlines.ts) covers every call
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
    ...optionalAddressMap(plaintextGuard(options, events)),
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
    ...optionalAddressMap(plaintextGuard(options, events)),
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

function optionalAddressMap<T>(map: T | undefined): { nodeAddressMap?: T } {
  return map === undefined ? {} : { nodeAddressMap: map };
}

/** The driver for the configured topology. */
export function createDriver(connection: RedisConnectionOptions, events: DriverEvents): Driver {
  if (connection.topology === 'standalone') return standaloneDriver(connection, events);
  if (connection.topology === 'sentinel') return sentinelDriver(connection, events);
  return clusterDriver(connection, events);
}
