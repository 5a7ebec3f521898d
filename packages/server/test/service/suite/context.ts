/**
 * What the cases of the reference service suite (packages/server/test/service/suite.ts) share:
 * the running service, a way to make a signed-in member, and the secrets and PHI the cases sent,
 * which the suite's last case looks for in Redis.
 */
import type { Client } from '../../helpers/client.js';
import type { RunningService } from '../../helpers/start-service.js';

export const PASSWORD = 'correct horse battery staple';

export interface SuiteContext {
  /** The service's address (read inside a case: the service starts before the first one). */
  readonly base: string;
  readonly running: RunningService;
  /** Whether the session cookie is the secure `__Host-` one. */
  readonly secureCookies: boolean;
  /** A new user, signed up and signed in, whose email and tokens are remembered. */
  member(): Promise<Client>;
  /** Values Redis must never hold in clear. */
  remember(...values: (string | undefined)[]): void;
}
