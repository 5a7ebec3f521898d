/**
 * The deployment-wide check: a Cluster is healthy and its primaries agree on the settings and ACL
 * users that matter; a standalone connection does not point at a Cluster node.
 */
import type { RedisConnectionOptions } from 'gatehouse';

import { noNodeToAudit, type CheckDefinition } from '../check.js';
import { CommandRefusedError } from '../errors.js';
import type { NodeSession } from '../node-session.js';
import { asList, asText } from '../replies.js';
import type { Audited } from '../targets.js';

export interface DeploymentContext {
  readonly topology: RedisConnectionOptions['topology'];
  readonly audited: Audited;
}

/** Server mode from HELLO (or INFO server): standalone, cluster or sentinel. */
async function serverMode(node: NodeSession): Promise<string> {
  const mode = (await node.hello()).get('mode');
  if (mode !== undefined && mode !== '') return mode;
  return (await node.info('server')).get('redis_mode') ?? 'unknown';
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

export const CLUSTER_CHECK: CheckDefinition<DeploymentContext> = {
  id: 'cluster',
  title: 'Cluster state and consistency',
  run: async ({ topology, audited }) => {
    const nodes = audited.nodes;
    if (topology !== 'cluster') {
      const mode = await serverMode(nodes[0] ?? noNodeToAudit());
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
