/**
 * The HTTP conformance suite for each adapter, on standalone Redis and on Cluster.
 */
import { after, before, describe } from 'node:test';

import { RedisStore } from '../src/store/redis.js';
import {
  startCluster,
  startStandalone,
  uniquePrefix,
  type Cluster,
  type Standalone,
} from './harness/topologies.js';
import { conformanceSuite } from './http/conformance-suite.js';
import { fastifyApp } from './http/fastify-app.js';
import type { RedisConnectionOptions } from '../src/store/options.js';

function storeOn(connection: () => RedisConnectionOptions) {
  return () => {
    const prefix = uniquePrefix();
    return Promise.resolve({
      store: new RedisStore({ connection: connection(), keyPrefix: prefix }),
      otherStore: () => new RedisStore({ connection: connection(), keyPrefix: prefix }),
    });
  };
}

describe('http adapters on redis standalone', () => {
  let redis: Standalone;
  before(async () => {
    redis = await startStandalone();
  });
  after(async () => {
    await redis.destroy();
  });
  conformanceSuite(
    'fastify 5, standalone',
    fastifyApp,
    storeOn(() => redis.connection),
  );
});

describe('http adapters on redis cluster', () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await startCluster();
  });
  after(async () => {
    await cluster.destroy();
  });
  conformanceSuite(
    'fastify 5, cluster',
    fastifyApp,
    storeOn(() => cluster.connection),
  );
});
