/**
 * The connection to Redis that every operation of RedisStore goes through: the topology's
 * driver (./drivers.ts), the deadline of every call (./deadlines.ts), the connection's life
 * (first connect, reconnects, close) and the errors it explains (./errors.ts).
 *
 * The first connection is started in the constructor and never awaited on a request path: while
 * Redis is away every operation fails at once with StoreUnavailableError, and resumes by itself
 * when Redis returns.
 */
import { StorePermissionError, StoreUnavailableError, type GatehouseError } from '../../errors.js';
import { silentLogger, type Logger } from '../../util/logger.js';
import { KeySpace } from '../keys.js';
import type { RedisConnectionOptions } from '../options.js';
import type { StoreHealth, StoreNodeHealth } from '../store.js';
import { CallDeadlines, DEFAULT_COMMAND_TIMEOUT_MS } from './deadlines.js';
import {
  createDriver,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_RECONNECT_MAX_DELAY_MS,
  reconnectDelayMs,
  type Driver,
  type DriverEvents,
  type ScriptArgument,
} from './drivers.js';
import { isNoScript, toStoreError } from './errors.js';
import { nodeHealth } from './health.js';
import type { LuaScript } from './lua-script.js';

export interface RedisConnectionSettings {
  readonly connection: RedisConnectionOptions;
  readonly keyPrefix?: string;
  readonly logger?: Logger;
}

/** How long close() waits for pending replies before dropping the connections. */
const CLOSE_TIMEOUT_MS = 1000;
/** Upper bound for every timeout option: longer is no fail-fast (and overflows timers past 24 days). */
export const MAX_REDIS_TIMEOUT_MS = 60_000;

function checkMs(option: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1 || value > MAX_REDIS_TIMEOUT_MS) {
    throw new RangeError(`${option} must be an integer from 1 to ${String(MAX_REDIS_TIMEOUT_MS)} ms`);
  }
  return value;
}

export class RedisConnection {
  readonly mode: RedisConnectionOptions['topology'];
  readonly keys: KeySpace;
  private readonly logger: Logger;
  private readonly driver: Driver;
  private readonly deadlines: CallDeadlines;
  private readonly commandTimeoutMs: number;
  private readonly reconnectMaxDelayMs: number;
  private readonly firstReady: Promise<void>;
  private markFirstReady: () => void = () => undefined;
  private connectionLost = false;
  /** Why the last connection attempt failed, while not connected; cleared on ready. */
  private lastConnectionError: GatehouseError | undefined;
  private closed = false;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(options: RedisConnectionSettings) {
    this.mode = options.connection.topology;
    this.keys = new KeySpace(options.keyPrefix);
    this.logger = options.logger ?? silentLogger;
    this.commandTimeoutMs = checkMs(
      'commandTimeoutMs',
      options.connection.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS,
    );
    this.reconnectMaxDelayMs = checkMs(
      'reconnectMaxDelayMs',
      options.connection.reconnectMaxDelayMs ?? DEFAULT_RECONNECT_MAX_DELAY_MS,
    );
    checkMs('connectTimeoutMs', options.connection.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS);
    this.firstReady = new Promise((resolve) => {
      this.markFirstReady = resolve;
    });
    const events: DriverEvents = {
      onError: (error) => {
        this.onConnectionError(error);
      },
      onReady: () => {
        this.onConnectionReady();
      },
    };
    this.driver = createDriver(options.connection, events);
    this.deadlines = new CallDeadlines({
      commandTimeoutMs: this.commandTimeoutMs,
      orderedConnection: this.mode === 'standalone',
      explain: (error) => this.explain(error),
    });
    this.startConnecting(0);
  }

  isReady(): boolean {
    return !this.closed && this.driver.isReady();
  }

  async waitUntilReady(timeoutMs: number): Promise<void> {
    if (this.closed) throw new StoreUnavailableError('the store is closed');
    if (this.isReady()) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new StoreUnavailableError(`Redis did not become ready within ${String(timeoutMs)} ms`));
      }, timeoutMs);
    });
    try {
      await Promise.race([this.firstReady, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Calls waiting on Redis, and how many of them are past their deadline. */
  pendingCalls(): { readonly inFlight: number; readonly overdue: number } {
    return this.deadlines.pendingCalls();
  }

  /** DEL of keys that share a hash slot, under the deadline. */
  del(keys: string[]): Promise<number> {
    return this.deadlines.run(() => this.driver.del(keys));
  }

  /** MGET with Buffer replies of keys that share a hash slot, under the deadline. */
  mGetBinary(keys: string[]): Promise<Array<Buffer | null>> {
    return this.deadlines.run(() => this.driver.mGetBinary(keys));
  }

  async publish(channel: string, message: string): Promise<void> {
    await this.deadlines.run(() => this.driver.publish(channel, message));
  }

  async subscribe(channel: string, listener: (message: string) => void): Promise<() => Promise<void>> {
    // On a connection of their own, which may lag behind the command connection's: not ordered.
    await this.deadlines.run(() => this.driver.subscribe(channel, listener), false);
    return async () => {
      if (this.closed) return;
      await this.deadlines.run(() => this.driver.unsubscribe(channel, listener), false);
    };
  }

  async health(): Promise<StoreHealth> {
    let nodes: StoreNodeHealth[];
    try {
      const primaries = await this.deadlines.run(() => this.driver.primaries());
      nodes = await Promise.all(
        primaries.map((node) => nodeHealth(node, (call) => this.deadlines.run(call))),
      );
    } catch {
      nodes = [];
    }
    const up = nodes.filter((node) => node.status === 'up');
    const latencies = up.map((node) => node.latencyMs ?? 0);
    return {
      status: up.length === 0 ? 'down' : up.length === nodes.length ? 'up' : 'degraded',
      mode: this.mode,
      latencyMs: latencies.length === 0 ? null : Math.max(...latencies),
      nodes,
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.deadlines.close();
    // A graceful close waits for every pending reply: never while disconnected (a connection
    // may never come) or stalled (overdue replies may never come), and never for long.
    if (!this.driver.isReady() || this.deadlines.overdue > 0) {
      await this.driver.destroy();
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const graceful = this.driver.close().then(
      () => true,
      () => false,
    );
    const timedOut = new Promise<false>((resolve) => {
      timer = setTimeout(() => {
        resolve(false);
      }, CLOSE_TIMEOUT_MS);
    });
    const closed = await Promise.race([graceful, timedOut]);
    clearTimeout(timer);
    if (!closed) await this.driver.destroy();
  }

  /**
   * Runs a script with EVALSHA, and with EVAL when the node does not have it cached (NOSCRIPT).
   * The number of keys is checked so that keys never travel in ARGV, where Cluster routing and
   * ACL key patterns could not see them.
   */
  runScript(script: LuaScript, keys: string[], args: ScriptArgument[], binary = false): Promise<unknown> {
    if (script.numberOfKeys === 'variadic' ? keys.length === 0 : keys.length !== script.numberOfKeys) {
      return Promise.reject(
        new TypeError(`${script.name} takes ${String(script.numberOfKeys)} keys, got ${String(keys.length)}`),
      );
    }
    // Plain promise chains rather than async functions: this is the hot path of every operation.
    return this.deadlines.run(() =>
      this.driver
        .evalSha(script.sha1, keys, args, binary)
        .catch((error: unknown) =>
          isNoScript(error)
            ? this.driver.eval(script.source, keys, args, binary)
            : Promise.reject(error as Error),
        ),
    );
  }

  /**
   * While disconnected, "the client is offline" hides the real cause: a refused password or
   * ACL user is reported as the permission problem it is (retrying will not fix it), and an
   * outage carries the last connection error (a refused certificate, say) for the operator.
   */
  private explain(error: GatehouseError): GatehouseError {
    const cause = this.lastConnectionError;
    if (!(error instanceof StoreUnavailableError) || cause === undefined || this.driver.isReady())
      return error;
    if (cause instanceof StorePermissionError) return cause;
    return new StoreUnavailableError(`${error.message}; last connection error: ${cause.message}`, {
      cause: error,
    });
  }

  /** Starts connecting; when a topology client gives up (cluster or sentinel discovery), tries again later. */
  private startConnecting(attempt: number): void {
    this.driver.connect().then(
      () => {
        // Closed while connecting: what the connection attempt opened must not outlive the store.
        if (this.closed) {
          void this.driver.destroy();
          return;
        }
        this.onConnectionReady();
      },
      (error: unknown) => {
        if (this.closed) {
          void this.driver.destroy();
          return;
        }
        this.onConnectionError(error);
        const delay = reconnectDelayMs(attempt, this.reconnectMaxDelayMs);
        this.retryTimer = setTimeout(() => {
          this.startConnecting(attempt + 1);
        }, delay);
        this.retryTimer.unref();
      },
    );
  }

  private onConnectionReady(): void {
    // Node-level events (a Cluster node, a Sentinel topology change) may come before the whole
    // client can take commands: only a client that says it is ready counts.
    if (this.closed || !this.driver.isReady()) return;
    this.lastConnectionError = undefined;
    this.markFirstReady();
    if (this.connectionLost) {
      this.connectionLost = false;
      this.logger.info({ mode: this.mode }, 'Redis connection restored');
    }
  }

  /** Logs once per outage, not once per reconnect attempt. */
  private onConnectionError(error: unknown): void {
    if (this.closed) return;
    if (!this.driver.isReady()) this.lastConnectionError = toStoreError(error);
    if (this.connectionLost) return;
    this.connectionLost = true;
    const reason = error instanceof Error ? error.message : String(error);
    this.logger.warn(
      { mode: this.mode, reason },
      'Redis connection lost; commands fail fast until it returns',
    );
  }
}
