/**
 * What this instance remembers of the sessions it has seen, in one map of one entry per session
 * handle, bounded by `localCacheMaxEntries` (when full, the oldest entry goes: insertion order):
 *
 * - validation: a validated session, answered without asking the store until `validUntilMs`, and
 *   only while this instance listens to ended-session events, which drop an ended session at once;
 * - owner: whose the session is. A session's user never changes, so this outlives the validation
 *   (see Sessions.ownerOf); forgotten when the session ends or fails to validate;
 * - opened: the last payload opened, with the sealed bytes it came from (see Sessions.openStoredPayload).
 *
 * `forget(handle)` drops everything about a session; `forgetValidations()` (a store outage,
 * close) drops every validation and keeps owners and opened payloads.
 */
import type { SessionRef, SessionStore, StoredSession } from '../store/session-store.js';
import type { EndedSessionEvents } from './ended-events.js';
import type { Payload } from './payload.js';
import type { Session } from './types.js';

/** After a failed subscription, try again no sooner than this. */
const CACHE_RETRY_MS = 5000;

export interface CachedValidation {
  readonly ref: SessionRef;
  readonly session: Session;
  /** The stored request count when cached; buffered requests come on top. */
  readonly storedRequestCount: number;
  /** Local clock: the first of cache TTL, touch due, idle or absolute deadline. */
  readonly validUntilMs: number;
}

interface CacheEntry {
  owner: string | undefined;
  opened: { readonly sealed: Buffer; readonly payload: Payload } | undefined;
  validation: CachedValidation | undefined;
}

export interface LocalCacheOptions {
  readonly store: SessionStore;
  readonly events: EndedSessionEvents;
  /** How long a validation may be answered from memory; 0 caches no validation. */
  readonly ttlMs: number;
  readonly maxEntries: number;
  readonly touchIntervalMs: number;
}

export class LocalCache {
  private readonly entries = new Map<string, CacheEntry>();
  /** Entries holding a validation: forgetValidations has nothing to walk when there is none. */
  private validationCount = 0;
  private state: 'off' | 'starting' | 'on' = 'off';
  private retryAtMs = 0;
  private generationCount = 0;
  /** Keeps the ended-events subscription alive for the cache; Sessions forgets the ended handles. */
  private readonly listener = (): void => undefined;

  constructor(private readonly options: LocalCacheOptions) {}

  /** True when validations may be cached at all (a TTL above 0). */
  get enabled(): boolean {
    return this.options.ttlMs > 0;
  }

  /** True while validations may be answered from here: ended-session events are arriving. */
  get active(): boolean {
    return this.state === 'on';
  }

  /**
   * Counts invalidations. A validation that was in flight while one happened does not cache its
   * result (see remember): it may have read the session just before it ended.
   */
  get generation(): number {
    return this.generationCount;
  }

  /** The cached validation of `handle` still within every bound at `nowMs`; else null (and dropped). */
  validation(handle: string, nowMs: number): CachedValidation | null {
    const entry = this.entries.get(handle);
    const validation = entry?.validation;
    if (!entry || !validation) return null;
    // A store that is not connected answers nothing from the cache either: Redis down means 503.
    if (this.state !== 'on' || nowMs >= validation.validUntilMs || !this.options.store.isReady()) {
      this.dropValidation(handle, entry);
      return null;
    }
    return validation;
  }

  /**
   * Remembers a session just validated (its user, and the validation while the cache is active),
   * unless an invalidation happened since `generation` was read before the validation began.
   */
  remember(
    generation: number,
    ref: SessionRef,
    session: Session,
    stored: StoredSession,
    serverNowMs: number,
  ): void {
    if (generation !== this.generationCount) return;
    const entry = this.entryOf(session.handle);
    const validation = this.validationOf(ref, session, stored, serverNowMs);
    if (validation) {
      if (!entry.validation) this.validationCount++;
      entry.validation = validation;
    }
    entry.owner = session.userId;
  }

  /** The user of the session `handle`, when this instance has validated it and not seen it end. */
  owner(handle: string): string | undefined {
    return this.entries.get(handle)?.owner;
  }

  /** Forgets whose the session `handle` is (it failed to validate). */
  forgetOwner(handle: string): void {
    const entry = this.entries.get(handle);
    if (!entry) return;
    entry.owner = undefined;
    this.deleteIfEmpty(handle, entry);
  }

  /** The payload last opened for `handle`, when it came from exactly these sealed bytes. */
  openedPayload(handle: string, sealed: Buffer): Payload | undefined {
    const opened = this.entries.get(handle)?.opened;
    return opened?.sealed.equals(sealed) ? opened.payload : undefined;
  }

  rememberOpened(handle: string, sealed: Buffer, payload: Payload): void {
    this.entryOf(handle).opened = { sealed: Buffer.from(sealed), payload };
  }

  /** Forgets everything about a session that ended (or may have). */
  forget(handle: string): void {
    this.generationCount++;
    const entry = this.entries.get(handle);
    if (!entry) return;
    if (entry.validation) this.validationCount--;
    this.entries.delete(handle);
  }

  /** Forgets every cached validation; owners and opened payloads stay. */
  forgetValidations(): void {
    this.generationCount++;
    if (this.validationCount === 0) return;
    for (const [handle, entry] of this.entries) {
      if (entry.validation) this.dropValidation(handle, entry);
    }
  }

  /** The cache serves only while ended-session events arrive; start listening in the background. */
  startListening(): void {
    if (this.state !== 'off' || Date.now() < this.retryAtMs) return;
    this.state = 'starting';
    const { events } = this.options;
    events.listen(this.listener).then(
      () => {
        this.state = events.has(this.listener) ? 'on' : 'off';
      },
      () => {
        this.state = 'off';
        this.retryAtMs = Date.now() + CACHE_RETRY_MS;
      },
    );
  }

  /** Forgets every validation and never caches one again (the events listener goes with close). */
  close(): void {
    this.forgetValidations();
    this.state = 'off';
    this.retryAtMs = Number.POSITIVE_INFINITY;
  }

  private validationOf(
    ref: SessionRef,
    session: Session,
    stored: StoredSession,
    serverNowMs: number,
  ): CachedValidation | null {
    const { ttlMs, touchIntervalMs } = this.options;
    if (ttlMs === 0 || this.state !== 'on') return null;
    // Deadlines come from the server's clock; turn them into spans from now on ours.
    const spanMs = Math.min(
      ttlMs,
      stored.lastSeenAtMs + touchIntervalMs - serverNowMs,
      stored.lastSeenAtMs + stored.idleTimeoutMs - serverNowMs,
      stored.absoluteExpiresAtMs - serverNowMs,
    );
    if (spanMs <= 0) return null;
    return { ref, session, storedRequestCount: stored.requestCount, validUntilMs: Date.now() + spanMs };
  }

  /** The entry of `handle`, made (after evicting the oldest entry when full) if there is none. */
  private entryOf(handle: string): CacheEntry {
    const existing = this.entries.get(handle);
    if (existing) return existing;
    if (this.entries.size >= this.options.maxEntries) {
      const oldest = this.entries.entries().next();
      if (!oldest.done) {
        if (oldest.value[1].validation) this.validationCount--;
        this.entries.delete(oldest.value[0]);
      }
    }
    const entry: CacheEntry = { owner: undefined, opened: undefined, validation: undefined };
    this.entries.set(handle, entry);
    return entry;
  }

  private dropValidation(handle: string, entry: CacheEntry): void {
    entry.validation = undefined;
    this.validationCount--;
    this.deleteIfEmpty(handle, entry);
  }

  private deleteIfEmpty(handle: string, entry: CacheEntry): void {
    if (entry.owner === undefined && entry.opened === undefined && entry.validation === undefined)
      this.entries.delete(handle);
  }
}
