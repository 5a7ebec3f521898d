/**
 * Which behaviour contract runs on which topology: the one table. Each file in ../topologies/
 * starts its servers and calls runContracts with its fixtures; a contract (a suite of cases every
 * store must pass) is listed here once per topology it runs on.
 */
import { lockSuite } from './locks.js';
import { rateLimitSuite } from './rate-limits.js';
import { securitySuite } from './security.js';
import { sessionSuite, type SessionFixture } from './sessions.js';
import { storeSuite, type StoreFixture } from './store.js';

export type Contract = 'store' | 'sessions' | 'security' | 'rate limits' | 'locks';

export type Topology =
  | 'memory'
  | 'redis standalone'
  | 'redis ACL user'
  | 'redis TLS'
  | 'redis sentinel'
  | 'redis cluster'
  | 'redis cluster, ACL user';

const EVERY_CONTRACT: readonly Contract[] = ['store', 'sessions', 'security', 'rate limits', 'locks'];

export const CONTRACTS_BY_TOPOLOGY: Readonly<Record<Topology, readonly Contract[]>> = {
  memory: EVERY_CONTRACT,
  'redis standalone': EVERY_CONTRACT,
  'redis ACL user': EVERY_CONTRACT,
  'redis cluster': EVERY_CONTRACT,
  // TLS and a Cluster ACL user change how the client connects, not what a primitive does.
  'redis TLS': ['store'],
  'redis cluster, ACL user': ['store'],
  // Sentinel: the primitives whose scripts touch several keys, through the Sentinel client.
  'redis sentinel': ['store', 'sessions', 'locks'],
};

export interface ContractFixtures {
  /** A store and a way to inspect its keys (the store contract). */
  readonly store: () => Promise<StoreFixture>;
  /** Primitives over one store (every other contract). */
  readonly sessions?: () => Promise<SessionFixture>;
}

/** Declares the suites of every contract the table lists for `topology`. */
export function runContracts(topology: Topology, fixtures: ContractFixtures): void {
  for (const contract of CONTRACTS_BY_TOPOLOGY[topology]) {
    if (contract === 'store') {
      storeSuite(topology, fixtures.store);
      continue;
    }
    const sessions = fixtures.sessions;
    if (!sessions) throw new Error(`${topology}: the ${contract} contract needs a sessions fixture`);
    const suite = {
      sessions: sessionSuite,
      security: securitySuite,
      'rate limits': rateLimitSuite,
      locks: lockSuite,
    }[contract];
    suite(topology, sessions);
  }
}
