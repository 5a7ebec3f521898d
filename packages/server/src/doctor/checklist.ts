/**
 * The per-server checks of `gatehouse doctor`, in report order (the deployment-wide checks,
 * Cluster and Sentinels, are added after `replication` by `runDoctor` in
 * packages/server/src/doctor/doctor.ts). Each group lives in packages/server/src/doctor/checks/.
 */
import type { CheckDefinition, NodeContext } from './check.js';
import {
  ANONYMOUS_ACCESS_CHECK,
  APP_USER_CHECK,
  DEFAULT_USER_CHECK,
  LEAST_PRIVILEGE_CHECK,
  PUBSUB_DEFAULT_CHECK,
  REQUIREPASS_CHECK,
} from './checks/access.js';
import { KEYS_WITHOUT_TTL_CHECK } from './checks/keys.js';
import { MAXMEMORY_POLICY_CHECK, MEMORY_CHECK, PERSISTENCE_CHECK } from './checks/memory.js';
import { REPLICATION_CHECK, VERSION_CHECK } from './checks/server.js';
import { BIND_CHECK, PLAINTEXT_PORT_CHECK, PROTECTED_MODE_CHECK, TLS_CHECK } from './checks/transport.js';

export const NODE_CHECKS: ReadonlyArray<CheckDefinition<NodeContext>> = [
  VERSION_CHECK,
  TLS_CHECK,
  PLAINTEXT_PORT_CHECK,
  ANONYMOUS_ACCESS_CHECK,
  DEFAULT_USER_CHECK,
  APP_USER_CHECK,
  LEAST_PRIVILEGE_CHECK,
  REQUIREPASS_CHECK,
  PROTECTED_MODE_CHECK,
  BIND_CHECK,
  MAXMEMORY_POLICY_CHECK,
  MEMORY_CHECK,
  PERSISTENCE_CHECK,
  REPLICATION_CHECK,
  PUBSUB_DEFAULT_CHECK,
  KEYS_WITHOUT_TTL_CHECK,
];
