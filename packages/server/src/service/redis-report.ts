/** What /health and the dashboard say about Redis, from the store's health. */
import type { StoreHealth } from 'gatehouse';

/** Redis facts summed over the primaries, for /health and the dashboard. */
export function redisReport(health: StoreHealth) {
  let usedBytes = 0;
  let maxBytes = 0;
  let clients = 0;
  let hits = 0;
  let misses = 0;
  let evicted = 0;
  let policy: string | null = null;
  let infoAvailable = false;
  let infoNotPermitted = false;
  for (const node of health.nodes) {
    if (node.info === 'not-permitted') infoNotPermitted = true;
    if (typeof node.info !== 'object') continue;
    infoAvailable = true;
    usedBytes += node.info.usedMemoryBytes;
    maxBytes += node.info.maxMemoryBytes;
    clients += node.info.connectedClients;
    hits += node.info.keyspaceHits;
    misses += node.info.keyspaceMisses;
    evicted += node.info.evictedKeys;
    policy ??= node.info.maxMemoryPolicy;
  }
  return {
    status: health.status,
    mode: health.mode,
    latencyMs: health.latencyMs,
    nodes: health.nodes.length,
    memory: infoAvailable ? { usedBytes, maxBytes, policy } : null,
    clients: infoAvailable ? clients : null,
    /** The ACL user may not run INFO (least privilege): memory, clients and stats are unknown. */
    infoNotPermitted,
    stats: infoAvailable
      ? {
          keyspaceHits: hits,
          keyspaceMisses: misses,
          hitRatio: hits + misses === 0 ? null : hits / (hits + misses),
          evictedKeys: evicted,
        }
      : null,
  };
}
