/**
 * The rate limits' store operation in memory (the contract: ../rate-limit-store.ts): GCRA, as
 * checkRateLimits.lua, dry runs included.
 */
import {
  assertRateLimitRules,
  rateLimitState,
  type RateLimitCheck,
  type RateLimitCheckOptions,
  type RateLimitRule,
  type RateLimitState,
  type RateLimitStore,
} from '../rate-limit-store.js';
import type { MemoryState } from './state.js';

export class MemoryRateLimitOperations implements Omit<RateLimitStore, 'isReady'> {
  constructor(private readonly state: MemoryState) {}

  checkRateLimits(
    rules: readonly RateLimitRule[],
    options: RateLimitCheckOptions = {},
  ): Promise<RateLimitCheck> {
    const charge = options.charge ?? true;
    return this.state.operation(() => {
      assertRateLimitRules(rules);
      const now = this.state.now();
      const keys = rules.map((rule) => this.state.keys.tagged('rl', 'rl', rule.id));
      const tats = keys.map((key) => Math.max(Number(this.state.get(key) ?? now), now));
      const admitted = rules.every((rule, i) => (tats[i] ?? now) - now <= rule.toleranceMs);
      const states = rules.map((rule, i): RateLimitState => {
        let tat = tats[i] ?? now;
        if (admitted) {
          tat += rule.intervalMs;
          // A dry run answers with the TAT a charge would set, and writes nothing.
          if (charge) this.state.set(keys[i] ?? '', String(tat), tat - now);
        }
        return rateLimitState(rule, admitted, tat - now);
      });
      return { admitted, nowMs: now, states };
    });
  }
}
