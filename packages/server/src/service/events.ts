/**
 * Live events: `GET /api/v1/events` is a server-sent event stream for the caller's session. When
 * the session ends on any instance (sign-out, termination, the session limit) every instance
 * hears it on the sessions' invalidation broadcast and closes the session's streams with
 * `event: session-ended`. Timeouts broadcast nothing (the session simply lapses), so each stream
 * also wakes when its session would expire and checks.
 */
import type { OutgoingHttpHeaders } from 'node:http';

import type { FastifyBaseLogger, FastifyInstance } from 'fastify';

import type { Gatehouse, Session, SessionEndedEvent } from 'gatehouse';

import { sendRefusal } from './replies.js';
import { requireSession } from './require-session.js';

export type EndedReason = 'signout' | 'terminated' | 'limit' | 'timeout';

interface Stream {
  readonly handle: string;
  readonly userId: string;
  write(text: string): void;
  end(): void;
  expiryTimer: NodeJS.Timeout | undefined;
  readonly heartbeat: NodeJS.Timeout;
}

const HEARTBEAT_MS = 20_000;
/** Expiry checks run this long after the deadline, so the session has surely lapsed. */
const EXPIRY_SLACK_MS = 50;
const RETRY_MS = 1000;
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Open streams one session may have on one instance (tabs of one browser share a session). */
const MAX_STREAMS_PER_SESSION = 8;
/** A refused stream may try again this much later (every 429 says when: docs/http-api.md). */
const STREAM_RETRY_AFTER_SECONDS = 5;

/** The API's word for why a session ended. */
export function endedReason(event: Pick<SessionEndedEvent, 'reason' | 'cause'>): EndedReason {
  switch (event.reason) {
    case 'evicted-limit':
      return 'limit';
    case 'expired-idle':
    case 'expired-absolute':
      return 'timeout';
    default:
      return event.cause === 'signout' ? 'signout' : 'terminated';
  }
}

export class LiveEvents {
  private readonly streams = new Map<string, Set<Stream>>();
  private unsubscribe: (() => Promise<void>) | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly gh: Gatehouse,
    private readonly logger: FastifyBaseLogger,
    /** Called for every session that ends anywhere (e.g. to revoke its access tokens). */
    private readonly onSessionEnded: (handle: string) => void = () => undefined,
  ) {}

  /** Open streams on this instance. */
  get size(): number {
    let count = 0;
    for (const set of this.streams.values()) count += set.size;
    return count;
  }

  /** Listens for ended sessions; while the store is down, keeps trying in the background. */
  async start(): Promise<void> {
    try {
      this.unsubscribe = await this.gh.sessions.onEnded((event) => {
        this.ended(event);
      });
    } catch (error) {
      if (this.stopped) return;
      this.logger.warn({ err: error }, 'session events not subscribed yet; retrying');
      this.retryTimer = setTimeout(() => {
        void this.start();
      }, RETRY_MS);
      this.retryTimer.unref();
    }
  }

  register(app: FastifyInstance): void {
    app.get(
      '/api/v1/events',
      {
        schema: {
          summary: 'Server-sent events for the current session; ends with session-ended',
          tags: ['auth'],
        },
        config: { gatehouse: { session: 'required', rateLimit: 'api' } },
      },
      (request, reply) => {
        const session = requireSession(request);
        if ((this.streams.get(session.handle)?.size ?? 0) >= MAX_STREAMS_PER_SESSION) {
          return sendRefusal(reply, 'RATE_LIMITED', 'Too many open event streams for this session.', {
            'Retry-After': String(STREAM_RETRY_AFTER_SECONDS),
          });
        }
        void reply.hijack();
        const response = reply.raw;
        const headers: OutgoingHttpHeaders = {};
        // The headers set before the handler (lower-case): security headers and the request id
        // (service hooks), rate limits and Cache-Control (the plugin).
        for (const [name, value] of Object.entries(reply.getHeaders())) {
          if (value !== undefined) headers[name] = value;
        }
        response.writeHead(200, {
          ...headers,
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-store',
          connection: 'keep-alive',
          'x-accel-buffering': 'no',
        });
        response.flushHeaders();
        const stream: Stream = {
          handle: session.handle,
          userId: session.userId,
          write: (text) => {
            if (!response.writableEnded) response.write(text);
          },
          end: () => {
            if (!response.writableEnded) response.end();
          },
          expiryTimer: undefined,
          heartbeat: setInterval(() => {
            stream.write(': keep-alive\n\n');
          }, HEARTBEAT_MS),
        };
        this.add(stream);
        stream.write(`retry: 3000\nevent: ready\ndata: ${JSON.stringify({ sessionId: session.handle })}\n\n`);
        // The session may have ended between authentication and here, unheard: look once now.
        void this.checkExpiry(stream, 'terminated');
        request.raw.once('close', () => {
          this.remove(stream);
        });
        response.once('close', () => {
          this.remove(stream);
        });
      },
    );
  }

  /** Ends every stream (shutdown), telling clients to come back. */
  closeAll(reason: string): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    for (const set of [...this.streams.values()]) {
      for (const stream of [...set]) {
        stream.write(`event: closing\ndata: ${JSON.stringify({ reason })}\n\n`);
        stream.end();
        this.remove(stream);
      }
    }
    void this.unsubscribe?.().catch(() => undefined);
  }

  private ended(event: SessionEndedEvent): void {
    this.onSessionEnded(event.handle);
    const set = this.streams.get(event.handle);
    if (!set) return;
    const reason = endedReason(event);
    for (const stream of [...set]) this.finish(stream, reason);
  }

  private finish(stream: Stream, reason: EndedReason): void {
    stream.write(`event: session-ended\ndata: ${JSON.stringify({ reason })}\n\n`);
    stream.end();
    this.remove(stream);
  }

  private add(stream: Stream): void {
    let set = this.streams.get(stream.handle);
    if (!set) {
      set = new Set();
      this.streams.set(stream.handle, set);
    }
    set.add(stream);
  }

  private remove(stream: Stream): void {
    clearInterval(stream.heartbeat);
    clearTimeout(stream.expiryTimer);
    const set = this.streams.get(stream.handle);
    if (!set) return;
    set.delete(stream);
    if (set.size === 0) this.streams.delete(stream.handle);
  }

  private scheduleExpiry(
    stream: Stream,
    session: Pick<Session, 'idleExpiresAtMs' | 'absoluteExpiresAtMs'>,
  ): void {
    clearTimeout(stream.expiryTimer);
    const dueMs =
      Math.min(session.idleExpiresAtMs, session.absoluteExpiresAtMs) - Date.now() + EXPIRY_SLACK_MS;
    stream.expiryTimer = setTimeout(
      () => {
        void this.checkExpiry(stream);
      },
      Math.min(Math.max(dueMs, EXPIRY_SLACK_MS), MAX_TIMER_MS),
    );
  }

  /** Whether the stream's session lapsed: listing does not count as activity, validating would. */
  private async checkExpiry(stream: Stream, goneReason: EndedReason = 'timeout'): Promise<void> {
    if (!this.streams.get(stream.handle)?.has(stream)) return;
    try {
      const live = (await this.gh.sessions.list(stream.userId)).find(
        (session) => session.handle === stream.handle,
      );
      if (!this.streams.get(stream.handle)?.has(stream)) return;
      if (live) this.scheduleExpiry(stream, live);
      else this.finish(stream, goneReason);
    } catch {
      // The store is down: look again shortly.
      clearTimeout(stream.expiryTimer);
      stream.expiryTimer = setTimeout(() => {
        void this.checkExpiry(stream, goneReason);
      }, RETRY_MS);
    }
  }
}
