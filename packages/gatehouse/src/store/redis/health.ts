/** Health of a Redis deployment: a PING and the INFO facts of every primary. */
import { StorePermissionError } from '../../errors.js';
import type { ServerInfo, StoreNodeHealth } from '../store.js';
import type { NodeHandle } from './drivers.js';
import { toStoreError } from './errors.js';

export function parseInfo(text: string): ServerInfo {
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

export type Deadline = <T>(call: () => Promise<T>) => Promise<T>;

export async function nodeHealth(node: NodeHandle, withDeadline: Deadline): Promise<StoreNodeHealth> {
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
