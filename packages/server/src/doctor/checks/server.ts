/** What the server is: its version and role, and the replicas it has. */
import { pass, type CheckDefinition, type NodeContext } from '../check.js';

function compareVersions(version: string, major: number, minor: number): number {
  const [a = 0, b = 0] = version.split('.').map((part) => Number.parseInt(part, 10) || 0);
  return a !== major ? a - major : b - minor;
}

export const VERSION_CHECK: CheckDefinition<NodeContext> = {
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
};

export const REPLICATION_CHECK: CheckDefinition<NodeContext> = {
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
};
