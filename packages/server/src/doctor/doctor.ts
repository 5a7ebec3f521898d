/**
 * `gatehouse doctor`: audits a Redis deployment against a hardening checklist for health data
 * (TLS, ACL users, least privilege, no eviction, memory, persistence, replication, Cluster
 * consistency, keys without a TTL). Read-only: the doctor never writes and never runs a
 * dangerous command; what the app user could do is asked with ACL DRYRUN.
 *
 * A check the audit user may not run is reported as `needs-rights` with the ACL line of a
 * read-only auditor user, never as an error. Only an unreachable target (or refused
 * credentials) makes `runDoctor` throw, with `DoctorConnectionError`.
 */
import {
  isValidKeyPrefix,
  KEY_PREFIX_EXPECTED,
  type ClusterOptions,
  type RedisConnectionOptions,
  type SentinelOptions,
} from 'gatehouse';
import {
  asList,
  asText,
  CommandRefusedError,
  DoctorConnectionError,
  formatAddress,
  NODE_CHECKS,
  NodeSession,
  openClient,
  refusedOutcome,
  runCheck,
  serverMode,
  withTimeout,
  type CheckDefinition,
  type NodeContext,
  type NodeTarget,
  type Outcome,
} from './checks.js';

export { AUDITOR_ACL_LINE, DoctorConnectionError } from './checks.js';

/**
 * `pass`: meets the checklist. `warn`: worth fixing, not a failure. `fail`: fix before storing
 * health data. `needs-rights`: not audited, because the audit user may not run the command.
 */
export type DoctorStatus = 'pass' | 'warn' | 'fail' | 'needs-rights';

/** One item of the checklist. */
export interface DoctorCheck {
  /** Stable identifier, e.g. `maxmemory-policy`. */
  readonly id: string;
  readonly title: string;
  readonly status: DoctorStatus;
  /** What was found; never contains a password. */
  readonly reason: string;
  /** What to do about it, for anything but `pass`. */
  readonly fix?: string;
}

export interface DoctorReport {
  /** What was audited: `host:port` (seed nodes for Cluster, Sentinels for Sentinel); never a password. */
  readonly target: string;
  readonly checks: readonly DoctorCheck[];
  /** Counts by status; `skipped` counts `needs-rights` checks. */
  readonly summary: {
    readonly pass: number;
    readonly warn: number;
    readonly fail: number;
    readonly skipped: number;
  };
}

export interface DoctorOptions {
  /**
   * Where and as whom to connect. Standalone: that server. Cluster: every primary (found with
   * CLUSTER NODES from the first reachable seed). Sentinel: the primary the Sentinels name.
   */
  readonly connection: RedisConnectionOptions;
  /** The key prefix the app uses (`REDIS_KEY_PREFIX`). Default `gh`. */
  readonly keyPrefix?: string;
  /**
   * The ACL user the app logs in as, when the doctor runs as another user (an auditor).
   * Default: the connected user (ACL WHOAMI).
   */
  readonly appUser?: string;
  /** Bound of every connection attempt and command, in ms. Default 2000. */
  readonly timeoutMs?: number;
  /** How many keys under the prefix to check for a TTL, per primary. Default 1000. */
  readonly sampleKeys?: number;
}

export const DEFAULT_DOCTOR_TIMEOUT_MS = 2000;
export const DEFAULT_SAMPLE_KEYS = 1000;

const STATUS_RANK: Record<DoctorStatus, number> = { pass: 0, 'needs-rights': 1, warn: 2, fail: 3 };

/** The server(s) to audit, and notes for the deployment-wide checks. */
interface Audited {
  readonly target: string;
  readonly nodes: readonly NodeSession[];
  /** Cluster primaries that could not be reached, with why. */
  readonly unreachable: ReadonlyArray<{ address: string; problem: string }>;
  /** How the primaries were found (Cluster), or why they could not be. */
  readonly discovery?: Outcome;
  readonly sentinel?: Outcome;
}

interface DeploymentContext {
  readonly topology: RedisConnectionOptions['topology'];
  readonly audited: Audited;
}

function nodeTarget(connection: RedisConnectionOptions, host: string, port: number): NodeTarget {
  return {
    host,
    port,
    ...(connection.tls === undefined ? {} : { tls: connection.tls }),
    ...(connection.username === undefined ? {} : { username: connection.username }),
    ...(connection.password === undefined ? {} : { password: connection.password }),
    ...(connection.topology !== 'cluster' && connection.db !== undefined ? { db: connection.db } : {}),
  };
}

/** The primaries a Cluster node knows of: CLUSTER NODES, else CLUSTER SLOTS (which the app user may run). */
async function clusterPrimaries(seed: NodeSession): Promise<Array<{ host: string; port: number }>> {
  try {
    const text = asText(await seed.cached(['CLUSTER', 'NODES']));
    const primaries: Array<{ host: string; port: number }> = [];
    for (const line of text.split('\n')) {
      const fields = line.trim().split(' ');
      const address = fields[1];
      const flags = (fields[2] ?? '').split(',');
      // A primary without slots holds no keys (or is a replica the seed has not heard of yet).
      if (address === undefined || !flags.includes('master') || fields.length < 9) continue;
      if (flags.some((flag) => flag === 'handshake' || flag === 'noaddr')) continue;
      const match = /^(.*):(\d+)@/.exec(address);
      if (!match) continue;
      const host = match[1] === '' || flags.includes('myself') ? seed.target.host : (match[1] ?? '');
      primaries.push({ host, port: flags.includes('myself') ? seed.target.port : Number(match[2]) });
    }
    return primaries;
  } catch (error) {
    if (!(error instanceof CommandRefusedError)) throw error;
    const slots = asList(await seed.cached(['CLUSTER', 'SLOTS']));
    const seen = new Map<string, { host: string; port: number }>();
    for (const range of slots) {
      const primary = asList(asList(range)[2]);
      const host = asText(primary[0]) || seed.target.host;
      const port = Number(asText(primary[1]));
      seen.set(formatAddress(host, port), { host, port });
    }
    return [...seen.values()];
  }
}

async function openCluster(connection: ClusterOptions, timeoutMs: number): Promise<Audited> {
  const target = connection.nodes.map((node) => formatAddress(node.host, node.port)).join(',');
  let seed: NodeSession | undefined;
  let lastError: unknown;
  for (const node of connection.nodes) {
    try {
      seed = await NodeSession.open(nodeTarget(connection, node.host, node.port), timeoutMs);
      break;
    } catch (error) {
      lastError = error;
    }
  }
  if (!seed) {
    throw lastError instanceof DoctorConnectionError
      ? lastError
      : new DoctorConnectionError(`cannot connect to any Cluster seed node (${target})`);
  }
  let primaries: Array<{ host: string; port: number }>;
  let discovery: Outcome | undefined;
  try {
    primaries = await clusterPrimaries(seed);
  } catch (error) {
    primaries = [{ host: seed.target.host, port: seed.target.port }];
    discovery =
      error instanceof CommandRefusedError
        ? {
            ...refusedOutcome(error),
            reason: `only ${seed.address} audited: ${refusedOutcome(error).reason}`,
          }
        : {
            status: 'warn',
            reason: `only ${seed.address} audited: the primaries could not be listed (${
              error instanceof Error ? error.message : String(error)
            })`,
          };
  }
  const nodes: NodeSession[] = [];
  const unreachable: Array<{ address: string; problem: string }> = [];
  await Promise.all(
    primaries.map(async ({ host, port }) => {
      const address = formatAddress(host, port);
      if (address === seed.address || (port === seed.target.port && host === seed.target.host)) {
        nodes.push(seed);
        return;
      }
      try {
        nodes.push(await NodeSession.open(nodeTarget(connection, host, port), timeoutMs));
      } catch (error) {
        unreachable.push({ address, problem: error instanceof Error ? error.message : String(error) });
      }
    }),
  );
  if (!nodes.includes(seed)) seed.close();
  if (nodes.length === 0) {
    throw new DoctorConnectionError(
      `no Cluster primary could be reached: ${unreachable.map((entry) => entry.problem).join('; ')}`,
    );
  }
  nodes.sort((a, b) => a.address.localeCompare(b.address));
  return { target, nodes, unreachable, ...(discovery === undefined ? {} : { discovery }) };
}

/** Asks the Sentinels for the primary; the Sentinels themselves are only asked, not audited. */
async function openSentinel(connection: SentinelOptions, timeoutMs: number): Promise<Audited> {
  const sentinels = connection.sentinels.map((node) => formatAddress(node.host, node.port));
  const target = `${connection.name} via ${sentinels.join(',')}`;
  let primary: { host: string; port: number } | undefined;
  let answered = 0;
  const problems: string[] = [];
  for (const node of connection.sentinels) {
    const sentinelTarget: NodeTarget = {
      host: node.host,
      port: node.port,
      ...(connection.tls === undefined ? {} : { tls: connection.tls }),
      ...(connection.sentinelUsername === undefined ? {} : { username: connection.sentinelUsername }),
      ...(connection.sentinelPassword === undefined ? {} : { password: connection.sentinelPassword }),
    };
    try {
      const client = await openClient(sentinelTarget, true, timeoutMs);
      try {
        const reply = asList(
          await withTimeout(
            client.sendCommand(['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', connection.name]),
            timeoutMs,
            `no answer within ${String(timeoutMs)} ms`,
          ),
        );
        answered += 1;
        if (reply.length >= 2 && primary === undefined) {
          primary = { host: asText(reply[0]), port: Number(asText(reply[1])) };
        }
      } finally {
        client.destroy();
      }
    } catch (error) {
      problems.push(
        `${formatAddress(node.host, node.port)}: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  }
  if (!primary) {
    throw new DoctorConnectionError(
      answered > 0
        ? `the Sentinels do not know a primary named ${connection.name}`
        : `cannot reach any Sentinel (${problems.join('; ')})`,
    );
  }
  const node = await NodeSession.open(nodeTarget(connection, primary.host, primary.port), timeoutMs);
  return {
    target,
    nodes: [node],
    unreachable: [],
    sentinel: {
      status: 'warn',
      reason: `primary ${node.address} named by ${String(answered)} of ${String(
        sentinels.length,
      )} Sentinels and audited; the Sentinels themselves (their ACL users, TLS, protected mode) are not audited in depth`,
      fix: 'audit each Sentinel by hand: default user off or requirepass, TLS, and bind',
    },
  };
}

async function openTarget(connection: RedisConnectionOptions, timeoutMs: number): Promise<Audited> {
  switch (connection.topology) {
    case 'standalone': {
      const node = await NodeSession.open(
        nodeTarget(connection, connection.host, connection.port),
        timeoutMs,
      );
      return { target: node.address, nodes: [node], unreachable: [] };
    }
    case 'cluster':
      return openCluster(connection, timeoutMs);
    case 'sentinel':
      return openSentinel(connection, timeoutMs);
  }
}

/** Settings that must be the same on every Cluster primary. */
async function clusterSettings(node: NodeSession): Promise<Map<string, string>> {
  const settings = new Map<string, string>();
  settings.set('maxmemory-policy', (await node.config('maxmemory-policy')) ?? 'unknown');
  settings.set('appendonly', (await node.config('appendonly')) ?? 'unknown');
  settings.set('requirepass set', ((await node.config('requirepass')) ?? '') === '' ? 'no' : 'yes');
  settings.set('acl-pubsub-default', (await node.config('acl-pubsub-default')) ?? 'unknown');
  try {
    // ACL users are per node in a Cluster: compare the rules (names only are ever printed).
    const users = asList(await node.cached(['ACL', 'LIST']))
      .map(asText)
      .sort();
    for (const line of users) settings.set(`ACL user '${line.split(' ')[1] ?? '?'}'`, line);
  } catch (error) {
    if (!(error instanceof CommandRefusedError)) throw error;
  }
  return settings;
}

const CLUSTER_CHECK: CheckDefinition<DeploymentContext> = {
  id: 'cluster',
  title: 'Cluster state and consistency',
  run: async ({ topology, audited }) => {
    const nodes = audited.nodes;
    if (topology !== 'cluster') {
      const mode = await serverMode(nodes[0] ?? never());
      if (mode === 'cluster') {
        return {
          status: 'fail',
          reason:
            'the server is a Cluster node but the connection is standalone: keys in other slots fail with MOVED',
          fix: 'set REDIS_CLUSTER_NODES to a few of the nodes instead of REDIS_URL/REDIS_ADDR',
        };
      }
      return { status: 'pass', reason: `not a Cluster (${mode})` };
    }
    if (audited.discovery) return audited.discovery;
    const problems: string[] = audited.unreachable.map(
      (entry) => `primary ${entry.address} unreachable (${entry.problem})`,
    );
    for (const node of nodes) {
      const info = new Map(
        asText(await node.cached(['CLUSTER', 'INFO']))
          .split(/\r?\n/)
          .map((line) => line.trim().split(':') as [string, string | undefined]),
      );
      const state = info.get('cluster_state') ?? 'unknown';
      if (state !== 'ok') problems.push(`${node.address}: cluster_state ${state}`);
      const assigned = info.get('cluster_slots_assigned');
      if (assigned !== undefined && assigned !== '16384') {
        problems.push(`${node.address}: only ${assigned} of 16384 slots assigned`);
      }
    }
    const settings = await Promise.all(nodes.map((node) => clusterSettings(node)));
    const names = new Set(settings.flatMap((map) => [...map.keys()]));
    for (const name of names) {
      const values = new Map<string, string[]>();
      settings.forEach((map, index) => {
        const value = map.get(name) ?? '(absent)';
        values.set(value, [...(values.get(value) ?? []), nodes[index]?.address ?? '?']);
      });
      if (values.size <= 1) continue;
      const groups = [...values.entries()];
      const label = (value: string, index: number): string =>
        !name.startsWith('ACL user ')
          ? value
          : value === '(absent)'
            ? 'missing'
            : `rule ${String(index + 1)}`;
      problems.push(
        `${name} differs: ${groups.map(([value, where], index) => `${label(value, index)} on ${where.join(', ')}`).join('; ')}`,
      );
    }
    if (problems.length > 0) {
      return {
        status: 'fail',
        reason: problems.join('; '),
        fix: 'apply the same settings and ACL users to every node (CONFIG SET / ACL SETUSER on each, and in each config file), and bring every primary up',
      };
    }
    return {
      status: 'pass',
      reason: `cluster_state ok on ${String(nodes.length)} primaries (${nodes
        .map((node) => node.address)
        .join(', ')}); maxmemory-policy, appendonly, requirepass, acl-pubsub-default and ACL users identical`,
    };
  },
};

function never(): never {
  throw new Error('no node to audit');
}

/** Combines one check's results from several primaries: the worst status, each node's reason. */
function mergeChecks(results: ReadonlyArray<{ address: string; check: DoctorCheck }>): DoctorCheck {
  const first = results[0]?.check ?? never();
  if (results.length === 1) return first;
  const worst = results.reduce((a, b) => (STATUS_RANK[b.check.status] > STATUS_RANK[a.check.status] ? b : a));
  const groups = new Map<string, { check: DoctorCheck; addresses: string[] }>();
  for (const { address, check } of results) {
    const key = `${check.status}\u0000${check.reason}`;
    const group = groups.get(key) ?? { check, addresses: [] };
    group.addresses.push(address);
    groups.set(key, group);
  }
  const reason =
    groups.size === 1
      ? `${first.reason} (every primary)`
      : [...groups.values()]
          .sort((a, b) => STATUS_RANK[b.check.status] - STATUS_RANK[a.check.status])
          .map((group) => `${group.addresses.join(', ')}: ${group.check.reason}`)
          .join('; ');
  return {
    id: first.id,
    title: first.title,
    status: worst.check.status,
    reason,
    ...(worst.check.fix === undefined ? {} : { fix: worst.check.fix }),
  };
}

/**
 * Runs the checklist against `options.connection`. Every check catches its own errors; throws
 * only `DoctorConnectionError` (nothing reachable, or credentials refused) and `TypeError`
 * for a key prefix that is not one.
 */
export async function runDoctor(options: DoctorOptions): Promise<DoctorReport> {
  const keyPrefix = options.keyPrefix ?? 'gh';
  if (!isValidKeyPrefix(keyPrefix)) throw new TypeError(`keyPrefix must be ${KEY_PREFIX_EXPECTED}`);
  const timeoutMs = options.timeoutMs ?? DEFAULT_DOCTOR_TIMEOUT_MS;
  const sampleKeys = options.sampleKeys ?? DEFAULT_SAMPLE_KEYS;
  const audited = await openTarget(options.connection, timeoutMs);
  try {
    const perNode = await Promise.all(
      audited.nodes.map(async (node) => {
        const context: NodeContext = { node, keyPrefix, appUser: options.appUser, sampleKeys, timeoutMs };
        const checks: DoctorCheck[] = [];
        for (const definition of NODE_CHECKS) checks.push(await runCheck(definition, context));
        return { address: node.address, checks };
      }),
    );
    const merged = NODE_CHECKS.map((_, index) =>
      mergeChecks(perNode.map(({ address, checks }) => ({ address, check: checks[index] ?? never() }))),
    );
    const deployment: DoctorCheck[] = [
      await runCheck(CLUSTER_CHECK, { topology: options.connection.topology, audited }),
    ];
    if (audited.sentinel) {
      const sentinel = audited.sentinel;
      deployment.push(
        await runCheck(
          { id: 'sentinel', title: 'Sentinels', run: () => Promise.resolve(sentinel) },
          undefined,
        ),
      );
    }
    const at = merged.findIndex((check) => check.id === 'replication') + 1;
    const checks = [...merged.slice(0, at), ...deployment, ...merged.slice(at)];
    const count = (status: DoctorStatus) => checks.filter((check) => check.status === status).length;
    return {
      target: audited.target,
      checks,
      summary: {
        pass: count('pass'),
        warn: count('warn'),
        fail: count('fail'),
        skipped: count('needs-rights'),
      },
    };
  } finally {
    for (const node of audited.nodes) node.close();
  }
}
