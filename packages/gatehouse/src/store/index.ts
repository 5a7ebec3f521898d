import type { Logger } from '../util/logger.js';
import { MemoryStore } from './memory/store.js';
import type { RedisConnectionOptions } from './options.js';
import { RedisStore } from './redis/store.js';
import type { Store } from './store.js';

export interface CreateStoreOptions {
  /** Where to keep state: Redis connection options, or `'memory'` for one process only. */
  readonly redis: RedisConnectionOptions | 'memory';
  /** First part of every key and channel. Default `gh`. */
  readonly keyPrefix?: string;
  readonly logger?: Logger;
}

/** The store for the given options. Redis connects in the background; see `Store.waitUntilReady`. */
export function createStore(options: CreateStoreOptions): Store {
  const keyPrefix = options.keyPrefix === undefined ? {} : { keyPrefix: options.keyPrefix };
  if (options.redis === 'memory') return new MemoryStore(keyPrefix);
  return new RedisStore({
    connection: options.redis,
    ...keyPrefix,
    ...(options.logger === undefined ? {} : { logger: options.logger }),
  });
}
