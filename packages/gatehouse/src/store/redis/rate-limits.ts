/** The rate limits' store operation on Redis (the contract: ../rate-limit-store.ts). */
import { Batcher } from '../batcher.js';
import {
  assertRateLimitRules,
  rateLimitState,
  type RateLimitCheck,
  type RateLimitCheckOptions,
  type RateLimitRule,
  type RateLimitStore,
} from '../rate-limit-store.js';
import type { RedisConnection } from './connection.js';
import { unexpectedReply } from './errors.js';
import * as lua from './scripts.generated.js';

/**
 * Rate-limit checks of one turn of the event loop share a script call, up to this many checks
 * and keys: enough to spend one call on a burst, few enough that a script stays well under a
 * millisecond on the server.
 */
const RATE_LIMIT_BATCH_CHECKS = 64;
const RATE_LIMIT_BATCH_KEYS = 256;

/** One check of a batch: its rules, and whether it charges them (false: a dry run). */
interface BatchedCheck {
  readonly rules: readonly RateLimitRule[];
  readonly charge: boolean;
}

export class RedisRateLimitOperations implements Omit<RateLimitStore, 'isReady'> {
  private readonly batcher = new Batcher<BatchedCheck, RateLimitCheck>({
    run: (requests) => this.checkRateLimitBatch(requests),
    maxCalls: RATE_LIMIT_BATCH_CHECKS,
    maxWeight: RATE_LIMIT_BATCH_KEYS,
    weigh: (check) => check.rules.length,
  });

  constructor(private readonly connection: RedisConnection) {}

  /**
   * Checks made in the same turn of the event loop go to Redis together, in one script call that
   * handles them one after the other: the same results as one call each, at a fraction of the
   * cost per check on both sides. All rate-limit keys share the `{rl}` hash tag, so any batch is
   * one Cluster slot. Dry runs (`charge: false`) share the call too, in their place in the order.
   */
  async checkRateLimits(
    rules: readonly RateLimitRule[],
    options: RateLimitCheckOptions = {},
  ): Promise<RateLimitCheck> {
    // Checked here, not in the batch: one bad call must not fail the calls batched with it.
    assertRateLimitRules(rules);
    return this.batcher.add({ rules, charge: options.charge ?? true });
  }

  private async checkRateLimitBatch(requests: readonly BatchedCheck[]): Promise<RateLimitCheck[]> {
    const keys: string[] = [];
    const args: string[] = [String(requests.length)];
    for (const { rules, charge } of requests) {
      args.push(String(rules.length), charge ? '1' : '0');
      for (const rule of rules) {
        keys.push(this.connection.keys.tagged('rl', 'rl', rule.id));
        args.push(String(rule.intervalMs), String(rule.toleranceMs));
      }
    }
    const reply = await this.connection.runScript(lua.checkRateLimits, keys, args);
    if (!Array.isArray(reply) || reply.length !== 1 + requests.length + keys.length)
      throw unexpectedReply(lua.checkRateLimits, reply);
    const numbers = (reply as unknown[]).map(Number);
    const nowMs = numbers[0] ?? 0;
    let at = 1;
    return requests.map(({ rules }) => {
      const admitted = numbers[at] === 1;
      const states = rules.map((rule, i) => rateLimitState(rule, admitted, numbers[at + 1 + i] ?? 0));
      at += 1 + rules.length;
      return { admitted, nowMs, states };
    });
  }
}
