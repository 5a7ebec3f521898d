/**
 * Deadlines for every call to Redis: the command timeout as a hard deadline, checked by one
 * sweeper timer, and the stall rule of an ordered connection (see CallDeadlines.run).
 */
import type { GatehouseError } from '../../errors.js';
import { StoreUnavailableError } from '../../errors.js';
import { isProgrammingError, toStoreError } from './errors.js';

export const DEFAULT_COMMAND_TIMEOUT_MS = 500;
/**
 * Calls still waiting on Redis after their deadline. Past this many, new calls are refused at
 * once without being sent, so a stalled server cannot make the process queue without bound.
 * Standalone holds new calls back sooner, from the first overdue command (see withDeadline).
 */
export const MAX_OVERDUE_CALLS = 200;
/** How often deadlines are checked: a deadline fires at most this late. */
const DEADLINE_SWEEP_MS = 20;
/**
 * While the standalone command connection is stalled, a new call waits at most this long for
 * the overdue replies before it is refused: long enough to read what a server sends as it wakes
 * up, short enough that a request making several calls during a stall still answers within
 * about one command timeout.
 */
const STALL_GRACE_MS = 50;

interface InFlightCall {
  readonly deadlineMs: number;
  /** A command on the command connection, whose replies come in order (not pub/sub). */
  readonly ordered: boolean;
  settled: boolean;
  overdue: boolean;
  readonly expire: () => void;
}

/** A call held back while the command connection is stalled. */
interface StallWaiter {
  readonly deadlineMs: number;
  readonly wake: () => void;
  readonly fail: (error: StoreUnavailableError) => void;
}

export interface CallDeadlinesOptions {
  readonly commandTimeoutMs: number;
  /** One command connection whose replies come in order (standalone): a late reply stalls it. */
  readonly orderedConnection: boolean;
  /** Adds what is known of the connection to an error (see RedisConnection). */
  readonly explain: (error: GatehouseError) => GatehouseError;
}

export class CallDeadlines {
  private overdueCalls = 0;
  /** Overdue calls on the command connection (ordered replies): while any, it is stalled. */
  private overdueOrderedCalls = 0;
  /** Calls waiting for a stall to clear (standalone), failed by the sweeper after their grace. */
  private readonly stallWaiters = new Set<StallWaiter>();
  /** Calls waiting on Redis, checked against their deadlines by one sweeper timer. */
  private readonly inFlight = new Set<InFlightCall>();
  private sweeper: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly options: CallDeadlinesOptions) {}

  /** Calls past their deadline whose replies have not come (yet). */
  get overdue(): number {
    return this.overdueCalls;
  }

  /** Calls waiting on Redis, and how many of them are past their deadline. */
  pendingCalls(): { readonly inFlight: number; readonly overdue: number } {
    return { inFlight: this.inFlight.size, overdue: this.overdueCalls };
  }

  /** Refuses every call from now on, and the calls held back by a stall. */
  close(): void {
    this.closed = true;
    clearInterval(this.sweeper);
    this.sweeper = undefined;
    for (const waiter of this.stallWaiters) waiter.fail(new StoreUnavailableError('the store is closed'));
    this.stallWaiters.clear();
  }

  /**
   * Runs one call against Redis with the command timeout as a hard deadline. node-redis's own
   * timeout only covers a command still waiting to be written; once written, a stalled server
   * would hold it forever. The deadline answers the caller on time; the command itself may still
   * run later (it cannot be recalled), which is why locks expire and nonces stay spent.
   *
   * One sweeper timer serves every call in flight (a timer per call costs more than the call's
   * own client work at high rates); a deadline fires at most DEADLINE_SWEEP_MS late.
   *
   * Standalone has one command connection, whose replies come in order: while a command on it
   * is past its deadline and unanswered, no later command can be answered before it. New calls
   * are then not sent: each waits up to STALL_GRACE_MS for the overdue replies (or the
   * connection closing) to end the stall, and is refused after that, instead of each waiting out
   * a deadline of its own (a request that makes three calls would take three deadlines) and
   * piling work onto the server for when it wakes up. Sentinel and Cluster keep only the
   * MAX_OVERDUE_CALLS cap: their commands may go to another node than the overdue ones.
   */
  run<T>(call: () => Promise<T>, ordered = true): Promise<T> {
    if (this.closed) return Promise.reject(new StoreUnavailableError('the store is closed'));
    if (ordered && this.options.orderedConnection && this.overdueOrderedCalls > 0) {
      return this.stallCleared().then(() => this.send(call, ordered));
    }
    return this.send(call, ordered);
  }

  /** Resolves when the command connection's overdue replies are in; fails after the grace. */
  private stallCleared(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.stallWaiters.add({
        deadlineMs: performance.now() + Math.min(STALL_GRACE_MS, this.options.commandTimeoutMs),
        wake: resolve,
        fail: reject,
      });
      this.startSweeper();
    });
  }

  private send<T>(call: () => Promise<T>, ordered: boolean): Promise<T> {
    if (this.closed) return Promise.reject(new StoreUnavailableError('the store is closed'));
    if (this.overdueCalls >= MAX_OVERDUE_CALLS) {
      return Promise.reject(
        new StoreUnavailableError(
          `Redis is stalled: ${String(this.overdueCalls)} calls are past their deadline; not sending more`,
        ),
      );
    }
    return new Promise<T>((resolve, reject) => {
      const entry: InFlightCall = {
        deadlineMs: performance.now() + this.options.commandTimeoutMs,
        ordered,
        settled: false,
        overdue: false,
        expire: () => {
          reject(
            new StoreUnavailableError(
              `Redis did not answer within ${String(this.options.commandTimeoutMs)} ms`,
            ),
          );
        },
      };
      const fail = (error: unknown) => {
        reject(isProgrammingError(error) ? error : this.options.explain(toStoreError(error)));
      };
      let pending: Promise<T>;
      try {
        pending = call();
      } catch (error) {
        fail(error);
        return;
      }
      this.inFlight.add(entry);
      this.startSweeper();
      pending.then(
        (value) => {
          this.finish(entry);
          if (!entry.overdue) resolve(value);
        },
        (error: unknown) => {
          this.finish(entry);
          if (!entry.overdue) fail(error);
        },
      );
    });
  }

  private finish(entry: InFlightCall): void {
    entry.settled = true;
    this.inFlight.delete(entry);
    if (!entry.overdue) return;
    this.overdueCalls--;
    if (entry.ordered && --this.overdueOrderedCalls === 0) {
      for (const waiter of this.stallWaiters) waiter.wake();
      this.stallWaiters.clear();
    }
  }

  private startSweeper(): void {
    if (this.sweeper) return;
    this.sweeper = setInterval(() => {
      this.sweepDeadlines();
    }, DEADLINE_SWEEP_MS);
    this.sweeper.unref();
  }

  /** Fails every call past its deadline or stall grace; stops when nothing is in flight. */
  private sweepDeadlines(): void {
    const now = performance.now();
    for (const entry of this.inFlight) {
      if (!entry.overdue && !entry.settled && now >= entry.deadlineMs) {
        entry.overdue = true;
        this.overdueCalls++;
        if (entry.ordered) this.overdueOrderedCalls++;
        entry.expire();
      }
    }
    for (const waiter of this.stallWaiters) {
      if (now < waiter.deadlineMs) continue;
      this.stallWaiters.delete(waiter);
      waiter.fail(
        new StoreUnavailableError(
          `Redis is stalled: a command has waited over ${String(this.options.commandTimeoutMs)} ms for its reply`,
        ),
      );
    }
    if (this.inFlight.size === 0 && this.stallWaiters.size === 0) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }
}
