/** Store and sessions suite fixtures on a Redis the test already started. */
import { MemoryStore } from '../../src/store/memory/store.js';
import { RedisStore } from '../../src/store/redis/store.js';
import type { RedisConnectionOptions } from '../../src/store/options.js';
import type { SessionFixture } from '../contracts/sessions.js';
import type { StoreFixture } from '../contracts/store.js';
import { dumpKeys, redisInspector, uniquePrefix, type AdminClient } from './topologies.js';

/** The sessions (and security) suites' fixture on a fresh memory store. */
export function memorySessionFixture(): Promise<SessionFixture> {
  const store = new MemoryStore({ keyPrefix: uniquePrefix() });
  return Promise.resolve({
    store,
    otherStore: () => store,
    dump: () => Promise.resolve(store.snapshotValues()),
    keysWithoutTtl: () =>
      Promise.resolve([...store.snapshotTtls()].filter(([, ttl]) => !(ttl > 0)).map(([key]) => key)),
    teardown: () => Promise.resolve(),
  });
}

/** The store suite's fixture; `admins` are connections to every primary. */
export function redisStoreFixture(
  connection: RedisConnectionOptions,
  admins: readonly AdminClient[],
  prefix = uniquePrefix(),
): Promise<StoreFixture> {
  return Promise.resolve({
    store: new RedisStore({ connection, keyPrefix: prefix }),
    inspector: redisInspector(admins, prefix),
    teardown: () => Promise.resolve(),
  });
}

/** The sessions suite's fixture; `admins` are connections to every primary. */
export function redisSessionFixture(
  connection: RedisConnectionOptions,
  admins: readonly AdminClient[],
  prefix = uniquePrefix(),
): Promise<SessionFixture> {
  return Promise.resolve({
    store: new RedisStore({ connection, keyPrefix: prefix }),
    otherStore: () => new RedisStore({ connection, keyPrefix: prefix }),
    dump: () => dumpKeys(admins, prefix),
    keysWithoutTtl: () => redisInspector(admins, prefix).keysWithoutTtl(),
    teardown: () => Promise.resolve(),
  });
}
