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
import { isValidKeyPrefix, KEY_PREFIX_EXPECTED, type RedisConnectionOptions } from 'gatehouse';

import { noNodeToAudit, runCheck, type NodeContext } from './check.js';
import { NODE_CHECKS } from './checklist.js';
import { CLUSTER_CHECK } from './checks/cluster.js';
import type { DoctorCheck, DoctorReport, DoctorStatus } from './report.js';
import { openTarget } from './targets.js';

export { AUDITOR_ACL_LINE } from './check.js';
export { DoctorConnectionError } from './errors.js';
export type { DoctorCheck, DoctorReport, DoctorStatus } from './report.js';

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

/** Combines one check's results from several primaries: the worst status, each node's reason. */
function mergeChecks(results: ReadonlyArray<{ address: string; check: DoctorCheck }>): DoctorCheck {
  const first = results[0]?.check ?? noNodeToAudit();
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
      mergeChecks(
        perNode.map(({ address, checks }) => ({ address, check: checks[index] ?? noNodeToAudit() })),
      ),
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
