/** What survives a full memory and a restart: no eviction, memory headroom, persistence. */
import { eitherOf, pass, type CheckDefinition, type NodeContext } from '../check.js';

function megabytes(bytes: number): string {
  return bytes >= 1024 * 1024 * 1024
    ? `${(bytes / 1024 / 1024 / 1024).toFixed(1)} GiB`
    : `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

export const MAXMEMORY_POLICY_CHECK: CheckDefinition<NodeContext> = {
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
};

export const MEMORY_CHECK: CheckDefinition<NodeContext> = {
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
};

export const PERSISTENCE_CHECK: CheckDefinition<NodeContext> = {
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
};
