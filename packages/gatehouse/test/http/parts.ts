/**
 * The gatehouse primitives a conformance app is built on, over one store: small limits so the
 * suite can reach them, an own origin the requests can claim or not.
 */
import { KeyRing } from '../../src/crypto/keyring.js';
import { Csrf } from '../../src/csrf/csrf.js';
import type { HttpGuardOptions } from '../../src/http/guard.js';
import { Locks } from '../../src/locks/locks.js';
import { Nonces } from '../../src/nonces/nonces.js';
import { RateLimits } from '../../src/rate-limit/rate-limits.js';
import { Sessions } from '../../src/sessions/sessions.js';
import type { Store } from '../../src/store/store.js';

export const OWN_ORIGIN = 'https://forms.example.test';

export interface AppParts extends HttpGuardOptions {
  readonly sessions: Sessions;
  readonly csrf: Csrf;
  readonly nonces: Nonces;
  readonly locks: Locks;
  readonly rateLimits: RateLimits;
}

export function appParts(store: Store, options: { secureCookies?: boolean } = {}): AppParts {
  const keyRing = KeyRing.random();
  return {
    sessions: new Sessions(store, keyRing, { localCacheTtl: 0 }),
    csrf: new Csrf(store, keyRing, { ownOrigin: OWN_ORIGIN }),
    nonces: new Nonces(store, keyRing),
    locks: new Locks(store, keyRing, { ttl: '10s' }),
    rateLimits: new RateLimits(store, keyRing, { policies: { auth: '3/1m', api: '1000/1m' } }),
    secureCookies: options.secureCookies ?? true,
    trustProxy: 1,
  };
}

/** A gate a handler waits on, so a test can hold a lock as long as it likes. */
export class Gate {
  private waiters: (() => void)[] = [];
  private entered: (() => void)[] = [];

  /** Called by the handler: waits until `open`. */
  async pass(): Promise<void> {
    for (const notify of this.entered.splice(0)) notify();
    await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  /** Resolves when a handler is waiting at the gate. */
  reached(): Promise<void> {
    return new Promise<void>((resolve) => this.entered.push(resolve));
  }

  open(): void {
    for (const resolve of this.waiters.splice(0)) resolve();
  }
}
