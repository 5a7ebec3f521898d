/**
 * The servers one audit covers, connected: the standalone server itself; every Cluster primary
 * (found with CLUSTER NODES, or CLUSTER SLOTS, from the first reachable seed); or the primary
 * the Sentinels name (the Sentinels are only asked, not audited).
 */
import type { ClusterOptions, RedisConnectionOptions, SentinelOptions } from 'gatehouse';

import { refusedOutcome } from './check.js';
import { CommandRefusedError, DoctorConnectionError } from './errors.js';
import { formatAddress, NodeSession, openClient, withTimeout, type NodeTarget } from './node-session.js';
import { asList, asText } from './replies.js';
import type { Outcome } from './report.js';

/** The server(s) to audit, and notes for the deployment-wide checks. */
export interface Audited {
  readonly target: string;
  readonly nodes: readonly NodeSession[];
  /** Cluster primaries that could not be reached, with why. */
  readonly unreachable: ReadonlyArray<{ address: string; problem: string }>;
  /** How the primaries were found (Cluster), or why they could not be. */
  readonly discovery?: Outcome;
  readonly sentinel?: Outcome;
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

/** Connects to the server(s) to audit; throws `DoctorConnectionError` when none can be reached. */
export async function openTarget(connection: RedisConnectionOptions, timeoutMs: number): Promise<Audited> {
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
