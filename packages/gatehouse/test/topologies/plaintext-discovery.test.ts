/**
 * `requireTlsOffLoopback`: nodes that a Redis Cluster names are held to the rule the configured
 * ones are held to. A one-node cluster announces itself at a TEST-NET address (192.0.2.1, never
 * reachable): the store connects to the configured loopback node, is told of the other address
 * by CLUSTER SLOTS, and refuses to open a plaintext connection there (and says so): no command
 * runs. Once the cluster names a loopback address, a store with the same setting works.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { RedisStore } from '../../src/store/redis/store.js';
import { RedisServer } from '../harness/redis-server.js';
import { redisCli, uniquePrefix, waitFor } from '../harness/topologies.js';

describe('plaintext connections to discovered nodes', () => {
  let server: RedisServer;

  before(async () => {
    server = await RedisServer.start({
      name: 'announcing-cluster',
      config: ['cluster-enabled yes', 'cluster-config-file nodes.conf', 'cluster-announce-ip 192.0.2.1'],
    });
    await redisCli(server.port, ['cluster', 'addslotsrange', '0', '16383']);
    await waitFor('cluster state ok', async () => {
      const info = await redisCli(server.port, ['cluster', 'info']);
      return info.some((line) => line.startsWith('cluster_state:ok'));
    });
  });

  after(async () => {
    await server.destroy();
  });

  it('refuses a node the cluster names off loopback, and accepts loopback nodes', async () => {
    const warnings: string[] = [];
    const logger = {
      error: () => undefined,
      info: () => undefined,
      debug: () => undefined,
      warn: (fields: Record<string, unknown>) => {
        warnings.push(String(fields['reason']));
      },
    };
    const store = new RedisStore({
      connection: {
        topology: 'cluster',
        nodes: [{ host: '127.0.0.1', port: server.port }],
        requireTlsOffLoopback: true,
        reconnectMaxDelayMs: 200,
      },
      keyPrefix: uniquePrefix(),
      logger,
    });
    try {
      // The configured node answers, but every command would go to the refused one: none runs.
      await store.waitUntilReady(5000).catch(() => undefined);
      await assert.rejects(store.probeReadWrite('refused', 'v', 10_000));
      assert.ok(
        warnings.some((reason) =>
          reason.includes(`refused a plaintext connection to 192.0.2.1:${String(server.port)}`),
        ),
        warnings.join('\n'),
      );
    } finally {
      await store.close();
    }
    await redisCli(server.port, ['config', 'set', 'cluster-announce-ip', '127.0.0.1']);
    const loopback = new RedisStore({
      connection: {
        topology: 'cluster',
        nodes: [{ host: '127.0.0.1', port: server.port }],
        requireTlsOffLoopback: true,
      },
      keyPrefix: uniquePrefix(),
    });
    try {
      await loopback.waitUntilReady(5000);
      assert.equal((await loopback.probeReadWrite('loopback', 'v', 10_000)).value, 'v');
    } finally {
      await loopback.close();
    }
  });
});
