/**
 * The route requirements that need the request's body (HttpGuard.admitBody, in
 * packages/gatehouse/src/http/guard.ts): a route lock, held and renewed while the handler works,
 * and a single-use nonce.
 */
import type { Lock, Locks } from '../locks/locks.js';
import type { Nonces } from '../nonces/nonces.js';
import { toMs, type Duration } from '../util/duration.js';
import { refusal, type HttpRefusal } from './envelope.js';

/** A route lock: the Lock (with its fencing token), renewed until released. */
export interface HeldRouteLock {
  readonly lock: Lock;
  /** Fires when the lock is lost while the handler runs. */
  readonly signal: AbortSignal;
  /** Stops renewing and frees the lock; false when it was already gone. */
  release(): Promise<boolean>;
}

/** A route's body requirements, evaluated for one request. */
export interface BodyRequirementsInput {
  readonly lock?: {
    readonly resource: string;
    readonly ttl?: Duration;
    readonly wait?: Duration;
    readonly maxHold?: Duration;
  };
  readonly nonce?: { readonly purpose: string; readonly value: unknown };
}

export class BodyRequirements {
  constructor(
    private readonly nonces: Nonces | undefined,
    private readonly locks: Locks | undefined,
  ) {}

  /**
   * The requirements that need the body, once it is parsed: the route's lock first, then its
   * nonce, so that a request refused for the lock keeps its nonce. Returns the lock taken (to
   * release once the handler has answered: also when the nonce was then refused) and the first
   * refusal.
   */
  async admitBody(
    requirements: BodyRequirementsInput,
  ): Promise<{ lock: HeldRouteLock | null; refusal: HttpRefusal | null }> {
    let lock: HeldRouteLock | null = null;
    if (requirements.lock) {
      const { resource, ...durations } = requirements.lock;
      const taken = await this.acquireLock(resource, durations);
      if (taken.refusal) return { lock: null, refusal: taken.refusal };
      lock = taken.lock;
    }
    if (!requirements.nonce) return { lock, refusal: null };
    try {
      return { lock, refusal: await this.consumeNonce(requirements.nonce.purpose, requirements.nonce.value) };
    } catch (error) {
      // The handler will not run: the lock goes back now, not when its renewals run out.
      await lock?.release().catch(() => undefined);
      throw error;
    }
  }

  /** Spends a single-use nonce for `purpose`: 409 `NONCE_INVALID` when missing, used, expired or foreign. */
  async consumeNonce(purpose: string, nonce: unknown): Promise<HttpRefusal | null> {
    const nonces = this.nonces;
    if (!nonces) throw new TypeError('nonces need a Nonces instance in the gatehouse options');
    const result = await nonces.consume(purpose, nonce);
    return result.ok
      ? null
      : refusal('NONCE_INVALID', 'The form token is missing, used, expired or not for this form.');
  }

  /**
   * Takes the route's lock, kept renewed (a third of its TTL) until `release()`, or 409 `LOCKED`
   * with `Retry-After` while another request holds it. The adapters release it once the handler
   * has answered; `signal` fires if it is lost meanwhile (renewal refused, Redis gone past the TTL,
   * or the hold limit).
   */
  async acquireLock(
    resource: string,
    options: { ttl?: Duration; wait?: Duration; maxHold?: Duration } = {},
  ): Promise<{ lock: HeldRouteLock; refusal: null } | { lock: null; refusal: HttpRefusal }> {
    const locks = this.locks;
    if (!locks) throw new TypeError('locks need a Locks instance in the gatehouse options');
    const result = await locks.acquire(resource, {
      ...(options.ttl === undefined ? {} : { ttl: toMs('lock ttl', options.ttl) }),
      ...(options.wait === undefined ? {} : { wait: options.wait }),
    });
    if (result.acquired) {
      const renewal = locks.keepRenewed(
        result,
        options.maxHold === undefined ? {} : { maxHold: options.maxHold },
      );
      const release = async () => {
        await renewal.stop();
        return result.release();
      };
      return { lock: { lock: result, signal: renewal.signal, release }, refusal: null };
    }
    return {
      lock: null,
      refusal: refusal('LOCKED', 'Another request is working on this; try again later.', {
        'Retry-After': String(Math.max(1, Math.ceil(result.retryAfterMs / 1000))),
      }),
    };
  }
}
