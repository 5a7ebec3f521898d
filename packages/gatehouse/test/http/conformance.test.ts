/**
 * The HTTP conformance suite for each adapter, on standalone Redis and on Cluster.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, describe, it } from 'node:test';

import { RedisStore } from '../../src/store/redis/store.js';
import {
  startCluster,
  startStandalone,
  uniquePrefix,
  type Cluster,
  type Standalone,
} from '../harness/topologies.js';
import { conformanceSuite, type AppBuilder } from './conformance-suite.js';
import { express4, expressApp } from './express-app.js';
import { fastifyApp } from './fastify-app.js';
import express from 'express';
import type { RedisConnectionOptions } from '../../src/store/options.js';

const FRAMEWORKS: [string, AppBuilder][] = [
  ['fastify 5', fastifyApp],
  ['express 5', expressApp(express)],
  ['express 4', expressApp(express4)],
];

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
  for (const [name, build] of FRAMEWORKS)
    conformanceSuite(
      `${name}, standalone`,
      build,
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
  for (const [name, build] of FRAMEWORKS)
    conformanceSuite(
      `${name}, cluster`,
      build,
      storeOn(() => cluster.connection),
    );
});

it('runs the suite on Fastify 5, Express 5 and Express 4 (the versions installed)', () => {
  const require = createRequire(import.meta.url);
  const version = (name: string) => (require(`${name}/package.json`) as { version: string }).version;
  assert.match(version('fastify'), /^5\./);
  assert.match(version('express'), /^5\./);
  assert.match(version('express4'), /^4\./);
});
