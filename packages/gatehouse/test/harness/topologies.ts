/**
 * The Redis deployments gatehouse supports, started for real on loopback: standalone, a
 * password + least-privilege ACL user, TLS with a generated CA, a 3-primary Cluster with one
 * replica each, and a primary + replica watched by 3 Sentinels.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

import { createClient, RESP_TYPES } from '@redis/client';

import { aclRule } from '../../src/store/acl.js';
import type { ClusterOptions, SentinelOptions, StandaloneOptions } from '../../src/store/options.js';
import { RedisServer } from './redis-server.js';
import { generatePki, type TestPki } from './tls.js';

const execFileAsync = promisify(execFile);

/** A key prefix of its own for each test, so tests never see each other's keys. */
export function uniquePrefix(): string {
  return `gh-t${randomBytes(4).toString('hex')}`;
}

/** Polls `check` until it returns true, or fails after `timeoutMs` naming `what`. */
export async function waitFor(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (error) {
      lastError = error;
    }
    await sleep(50);
  }
  const detail = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
  throw new Error(`timed out after ${String(timeoutMs)} ms waiting for ${what}${detail}`);
}

interface Credentials {
  readonly username: string;
  readonly password: string;
}

function cliAuth(auth: Credentials | undefined): string[] {
  return auth ? ['--user', auth.username, '--pass', auth.password, '--no-auth-warning'] : [];
}

/** Runs redis-cli against a plaintext loopback server and returns its raw output lines. */
export async function redisCli(port: number, args: string[], auth?: Credentials): Promise<string[]> {
  const { stdout } = await execFileAsync('redis-cli', [
    '-h',
    '127.0.0.1',
    '-p',
    String(port),
    ...cliAuth(auth),
    ...args,
  ]);
  return stdout.split('\n').filter((line) => line !== '');
}

/** A plain node-redis client with full rights, for test setup and inspection only. */
export async function adminClient(
  port: number,
  options: { username?: string; password?: string; pki?: TestPki } = {},
) {
  const client = createClient({
    socket: {
      host: '127.0.0.1',
      port,
      reconnectStrategy: false,
      ...(options.pki
        ? { tls: true as const, ca: options.pki.ca, cert: options.pki.clientCert, key: options.pki.clientKey }
        : {}),
    },
    ...(options.username === undefined ? {} : { username: options.username }),
    ...(options.password === undefined ? {} : { password: options.password }),
  });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

export type AdminClient = Awaited<ReturnType<typeof adminClient>>;

export interface Standalone {
  readonly server: RedisServer;
  readonly connection: StandaloneOptions;
  admin(): Promise<AdminClient>;
  destroy(): Promise<void>;
}

export async function startStandalone(): Promise<Standalone> {
  const server = await RedisServer.start({ name: 'standalone' });
  return {
    server,
    connection: { topology: 'standalone', host: '127.0.0.1', port: server.port },
    admin: () => adminClient(server.port),
    destroy: () => server.destroy(),
  };
}

export const ACL_ADMIN = { username: 'admin', password: 'admin-secret-for-tests' } as const;
export const ACL_APP = { username: 'gatehouse', password: 'app-secret-for-tests' } as const;

/**
 * A server with the `default` user off, an admin user, and the app user with exactly
 * gatehouse's least-privilege rule for `prefix` (keys and channels under it, its commands only).
 */
export async function startAclServer(prefix: string): Promise<Standalone> {
  const server = await RedisServer.start({ name: 'acl', config: aclConfig(prefix) });
  return {
    server,
    connection: { topology: 'standalone', host: '127.0.0.1', port: server.port, ...ACL_APP },
    admin: () => adminClient(server.port, ACL_ADMIN),
    destroy: () => server.destroy(),
  };
}

export interface TlsStandalone extends Standalone {
  readonly pki: TestPki;
}

/** TLS only (plaintext port closed), client certificates required, TLS 1.2+. */
export async function startTlsServer(): Promise<TlsStandalone> {
  const pki = generatePki();
  const server = await RedisServer.start({
    name: 'tls',
    tls: { certFile: pki.serverCertFile, keyFile: pki.serverKeyFile, caFile: pki.caFile },
  });
  return {
    server,
    pki,
    connection: {
      topology: 'standalone',
      host: '127.0.0.1',
      port: server.port,
      tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey },
    },
    admin: () => adminClient(server.port, { pki }),
    destroy: async () => {
      await server.destroy();
      rmSync(pki.dir, { recursive: true, force: true });
    },
  };
}

export interface Cluster {
  readonly nodes: readonly RedisServer[];
  readonly connection: ClusterOptions;
  /** Admin credentials, when the cluster has ACL users. */
  readonly admin: Credentials | undefined;
  /** Ports of the nodes that are primaries now. */
  primaryPorts(): Promise<number[]>;
  destroy(): Promise<void>;
}

async function clusterInfo(port: number, auth: Credentials | undefined): Promise<Map<string, string>> {
  const lines = await redisCli(port, ['cluster', 'info'], auth);
  return new Map(lines.map((line) => line.trim().split(':') as [string, string]));
}

/** The ACL lines of startAclServer, for any server: default user off, an admin, the app user. */
function aclConfig(prefix: string): string[] {
  return [
    'user default off',
    `user ${ACL_ADMIN.username} on >${ACL_ADMIN.password} ~* &* +@all`,
    `user ${ACL_APP.username} on >${ACL_APP.password} ${aclRule(prefix)}`,
  ];
}

/**
 * Six nodes: three primaries with one replica each, every slot covered, state ok on every node.
 * With `aclPrefix`, every node has the default user off and the least-privilege app user, and
 * the connection options log in as that user.
 */
export async function startCluster(options: { aclPrefix?: string } = {}): Promise<Cluster> {
  const acl = options.aclPrefix;
  const admin = acl === undefined ? undefined : ACL_ADMIN;
  const nodes = await Promise.all(
    Array.from({ length: 6 }, (_, index) =>
      RedisServer.start({
        name: `cluster${String(index)}`,
        config: [
          'cluster-enabled yes',
          'cluster-config-file nodes.conf',
          'cluster-node-timeout 2000',
          ...(acl === undefined
            ? []
            : [...aclConfig(acl), `masteruser ${ACL_ADMIN.username}`, `masterauth ${ACL_ADMIN.password}`]),
        ],
      }),
    ),
  );
  await execFileAsync('redis-cli', [
    ...cliAuth(admin),
    '--cluster',
    'create',
    ...nodes.map((node) => `127.0.0.1:${String(node.port)}`),
    '--cluster-replicas',
    '1',
    '--cluster-yes',
  ]);
  await waitFor('cluster state ok on every node', async () => {
    const infos = await Promise.all(nodes.map((node) => clusterInfo(node.port, admin)));
    return infos.every(
      (info) => info.get('cluster_state') === 'ok' && info.get('cluster_known_nodes') === '6',
    );
  });
  return {
    nodes,
    connection: {
      topology: 'cluster',
      nodes: nodes.slice(0, 3).map((node) => ({ host: '127.0.0.1', port: node.port })),
      ...(acl === undefined ? {} : ACL_APP),
    },
    admin,
    primaryPorts: async () => {
      const ports: number[] = [];
      for (const node of nodes) {
        if (!node.running) continue;
        const role = await redisCli(node.port, ['role'], admin);
        if (role[0] === 'master') ports.push(node.port);
      }
      return ports;
    },
    destroy: async () => {
      await Promise.all(nodes.map((node) => node.destroy()));
    },
  };
}

export const SENTINEL_NAME = 'gh-primary';

export interface SentinelSet {
  readonly primary: RedisServer;
  readonly replica: RedisServer;
  readonly sentinels: readonly RedisServer[];
  readonly connection: SentinelOptions;
  /** The primary's port as the Sentinels see it now. */
  currentPrimaryPort(): Promise<number>;
  destroy(): Promise<void>;
}

async function sentinelMaster(port: number): Promise<Map<string, string>> {
  const lines = await redisCli(port, ['sentinel', 'master', SENTINEL_NAME]);
  const fields = new Map<string, string>();
  for (let i = 0; i + 1 < lines.length; i += 2) fields.set(lines[i] ?? '', lines[i + 1] ?? '');
  return fields;
}

/** A primary and a replica watched by three Sentinels (quorum 2, down after 1 s). */
export async function startSentinelSet(): Promise<SentinelSet> {
  const primary = await RedisServer.start({ name: 'sentinel-primary' });
  const replica = await RedisServer.start({
    name: 'sentinel-replica',
    config: [`replicaof 127.0.0.1 ${String(primary.port)}`],
  });
  await waitFor('replica in sync', async () => {
    const info = await redisCli(replica.port, ['info', 'replication']);
    return info.some((line) => line.trim() === 'master_link_status:up');
  });
  const sentinels = await Promise.all(
    [0, 1, 2].map((index) =>
      RedisServer.start({
        name: `sentinel${String(index)}`,
        sentinel: true,
        config: [
          `sentinel monitor ${SENTINEL_NAME} 127.0.0.1 ${String(primary.port)} 2`,
          `sentinel down-after-milliseconds ${SENTINEL_NAME} 1000`,
          `sentinel failover-timeout ${SENTINEL_NAME} 5000`,
          `sentinel parallel-syncs ${SENTINEL_NAME} 1`,
        ],
      }),
    ),
  );
  await waitFor('sentinels to know each other and the replica', async () => {
    const views = await Promise.all(sentinels.map((sentinel) => sentinelMaster(sentinel.port)));
    return views.every((view) => view.get('num-other-sentinels') === '2' && view.get('num-slaves') === '1');
  });
  const firstSentinel = sentinels[0];
  if (!firstSentinel) throw new Error('no sentinel started');
  return {
    primary,
    replica,
    sentinels,
    connection: {
      topology: 'sentinel',
      name: SENTINEL_NAME,
      sentinels: sentinels.map((sentinel) => ({ host: '127.0.0.1', port: sentinel.port })),
      sentinelScanIntervalMs: 1000,
    },
    currentPrimaryPort: async () => {
      const live = sentinels.find((sentinel) => sentinel.running) ?? firstSentinel;
      const lines = await redisCli(live.port, ['sentinel', 'get-master-addr-by-name', SENTINEL_NAME]);
      return Number(lines[1]);
    },
    destroy: async () => {
      await Promise.all([...sentinels, primary, replica].map((server) => server.destroy()));
    },
  };
}

/**
 * A StoreInspector over admin connections to every primary. On a Cluster, a node that does not
 * own a key answers MOVED, so each key is asked of every primary until one owns it.
 */
export function redisInspector(clients: readonly AdminClient[], prefix: string) {
  const scanAll = async (): Promise<Array<[AdminClient, string]>> => {
    const found: Array<[AdminClient, string]> = [];
    for (const client of clients) {
      for await (const keys of client.scanIterator({ MATCH: `${prefix}:*`, COUNT: 1000 })) {
        for (const key of keys) found.push([client, key]);
      }
    }
    return found;
  };
  return {
    pttl: async (key: string): Promise<number> => {
      let lastError: unknown;
      for (const client of clients) {
        try {
          return await client.pTTL(key);
        } catch (error) {
          lastError = error;
        }
      }
      throw lastError;
    },
    keysWithoutTtl: async (): Promise<string[]> => {
      const without: string[] = [];
      for (const [client, key] of await scanAll()) {
        if ((await client.pTTL(key)) === -1) without.push(key);
      }
      return without;
    },
    keyCount: async (): Promise<number> => (await scanAll()).length,
  };
}

/** Every key under `prefix` on the given primaries, with its value as text (latin1 for binary). */
export async function dumpKeys(
  clients: readonly AdminClient[],
  prefix: string,
): Promise<Map<string, string>> {
  const dump = new Map<string, string>();
  for (const client of clients) {
    const binary = client.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });
    for await (const keys of client.scanIterator({ MATCH: `${prefix}:*`, COUNT: 1000 })) {
      for (const key of keys) {
        const type = await client.type(key);
        const value: unknown =
          type === 'string'
            ? await binary.get(key)
            : type === 'zset'
              ? await binary.zRangeWithScores(key, 0, -1)
              : type === 'hash'
                ? await binary.hGetAll(key)
                : type;
        dump.set(key, render(value));
      }
    }
  }
  return dump;
}

function render(value: unknown): string {
  if (Buffer.isBuffer(value)) return value.toString('latin1');
  if (Array.isArray(value)) return value.map(render).join(' ');
  if (value !== null && typeof value === 'object') {
    return Object.entries(value)
      .map(([field, inner]) => `${field}=${render(inner)}`)
      .join(' ');
  }
  return String(value);
}
