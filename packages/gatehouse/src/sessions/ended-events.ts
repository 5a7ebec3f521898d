/**
 * Ended-session events: every instance sharing the store tells the others which sessions ended
 * (revoked, evicted for the limit, rotated), over pub/sub (sharded on Cluster). Delivery is at
 * most once; validation refuses an ended session whether or not its event arrived.
 */
import { SESSION_END_REASONS, type SessionEndReason, type SessionStore } from '../store/session-store.js';
import { refFromHandle } from './token.js';
import type { SessionEndedEvent } from './types.js';

/** A revocation cause: a short lower-case word, carried to every instance with the event. */
const CAUSE = /^[a-z][a-z0-9-]{0,31}$/;

export function isRevocationCause(cause: string): boolean {
  return CAUSE.test(cause);
}

export class EndedSessionEvents {
  private readonly channel: string;
  private readonly listeners = new Set<(event: SessionEndedEvent) => void>();
  private subscription: Promise<() => Promise<void>> | undefined;

  /** `onHandleEnded` hears of every ended session first, before the listeners. */
  constructor(
    private readonly store: SessionStore,
    private readonly onHandleEnded: (handle: string) => void,
  ) {
    this.channel = store.keys.channel('sess', 'ended');
  }

  /** Subscribes `listener` (see Sessions.onEnded); resolves once listening. */
  async listen(listener: (event: SessionEndedEvent) => void): Promise<() => Promise<void>> {
    this.listeners.add(listener);
    try {
      this.subscription ??= this.store.subscribe(this.channel, (message) => {
        this.deliver(message);
      });
      await this.subscription;
    } catch (error) {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) this.subscription = undefined;
      throw error;
    }
    return async () => {
      this.listeners.delete(listener);
      await this.stopListening();
    };
  }

  /** True while `listener` is subscribed. */
  has(listener: (event: SessionEndedEvent) => void): boolean {
    return this.listeners.has(listener);
  }

  /** Drops every listener and the subscription. */
  close(): Promise<void> {
    this.listeners.clear();
    return this.stopListening();
  }

  /** Tells every instance which sessions ended. Best effort: the sessions are ended either way. */
  async announce(handles: readonly string[], reason: SessionEndReason, cause?: string): Promise<void> {
    if (handles.length === 0) return;
    try {
      await this.store.publish(
        this.channel,
        JSON.stringify(cause === undefined ? { h: handles, r: reason } : { h: handles, r: reason, c: cause }),
      );
    } catch {
      // Validation refuses them anyway; listeners learn at their next check.
    }
  }

  private async stopListening(): Promise<void> {
    if (this.listeners.size > 0 || !this.subscription) return;
    const subscription = this.subscription;
    this.subscription = undefined;
    try {
      await (
        await subscription
      )();
    } catch {
      // Not subscribed, or the store is gone: nothing is listening either way.
    }
  }

  private deliver(message: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(message);
    } catch {
      return;
    }
    if (typeof parsed !== 'object' || parsed === null) return;
    const { h: handles, r: reason, c: cause } = parsed as { h?: unknown; r?: unknown; c?: unknown };
    const knownReason = SESSION_END_REASONS.find((candidate) => candidate === reason);
    if (!Array.isArray(handles) || !knownReason) return;
    const event =
      typeof cause === 'string' && CAUSE.test(cause)
        ? { reason: knownReason, cause }
        : { reason: knownReason };
    for (const handle of handles) {
      if (typeof handle !== 'string' || refFromHandle(handle) === null) continue;
      this.onHandleEnded(handle);
      for (const listener of this.listeners) {
        try {
          listener({ handle, ...event });
        } catch {
          // One listener's failure must not keep the others from hearing.
        }
      }
    }
  }
}
