/**
 * Session activity buffered in this process. A validation writes at most once per
 * `touchInterval` (default 60 s); the requests counted in between wait here, keyed by session
 * handle, and are written with the session's next write, or by the periodic flush. The idle
 * deadline is therefore enforced from the last write, at most one touch interval earlier than the
 * strict deadline: on the safe side.
 */
import type { SessionRef, SessionStore } from '../store/session-store.js';
import type { SessionRepository } from './repository.js';

/** Buffered activity entries before a flush is forced, so memory stays bounded. */
const MAX_BUFFERED = 10_000;
const FLUSH_CONCURRENCY = 32;

export interface BufferedActivity {
  readonly ref: SessionRef;
  pending: number;
  lastSeenAtMs: number;
}

export class ActivityBuffer {
  private readonly buffered = new Map<string, BufferedActivity>();
  private readonly flushTimer: NodeJS.Timeout;
  private flushing: Promise<void> | undefined;

  /** Starts the flush timer; `repository` (durable mode) gets every write the store gets. */
  constructor(
    private readonly store: SessionStore,
    private readonly repository: SessionRepository | undefined,
    flushIntervalMs: number,
  ) {
    this.flushTimer = setInterval(() => void this.flush(), Math.max(flushIntervalMs, 100));
    this.flushTimer.unref();
  }

  /** The activity buffered for the session `handle`, if any. */
  get(handle: string): BufferedActivity | undefined {
    return this.buffered.get(handle);
  }

  /** The requests counted for the session `handle` and not written yet. */
  pendingOf(handle: string): number {
    return this.buffered.get(handle)?.pending ?? 0;
  }

  /** Replaces the activity buffered for the session `handle`. */
  set(handle: string, activity: BufferedActivity): void {
    this.buffered.set(handle, activity);
  }

  /** Drops what is buffered for the session `handle` (written, or the session ended). */
  forget(handle: string): void {
    this.buffered.delete(handle);
  }

  /** Starts a flush when the buffer holds its most. */
  flushWhenFull(): void {
    if (this.buffered.size >= MAX_BUFFERED) void this.flush();
  }

  /** Writes buffered activity now. */
  async flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    const batch = [...this.buffered.values()];
    this.buffered.clear();
    this.flushing = (async () => {
      for (let start = 0; start < batch.length; start += FLUSH_CONCURRENCY) {
        await Promise.allSettled(
          batch.slice(start, start + FLUSH_CONCURRENCY).map(async (activity) => {
            const { ref, pending, lastSeenAtMs } = activity;
            await this.store.touchSession(ref, pending, lastSeenAtMs);
            await this.repository?.touch(ref.uid, ref.tokenHash, lastSeenAtMs, pending);
          }),
        );
      }
    })().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  stopFlushTimer(): void {
    clearInterval(this.flushTimer);
  }
}
