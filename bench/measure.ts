/**
 * Throughput measurement shared by the benchmarks: contenders run in interleaved rounds and the
 * median round counts, so drift on a shared machine hits all of them alike.
 */
export interface Contender {
  readonly name: string;
  readonly op: (index: number) => Promise<unknown>;
}

export interface ThroughputResult {
  readonly name: string;
  readonly opsPerSecond: number;
  readonly rounds: readonly number[];
}

/**
 * Runs `op` with `concurrency` calls in flight for `durationMs`; returns operations per second.
 * Each worker yields to the event loop every few calls, as a server's requests do (they arrive
 * as I/O): otherwise calls answered from memory would starve socket reads and timers. A call
 * that throws fails the whole benchmark.
 */
async function measure(
  op: (index: number) => Promise<unknown>,
  concurrency: number,
  durationMs: number,
): Promise<number> {
  let next = 0;
  let done = 0;
  const deadline = performance.now() + durationMs;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      let sinceYield = 0;
      while (performance.now() < deadline) {
        await op(next++);
        done++;
        if (++sinceYield === 16) {
          sinceYield = 0;
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
      }
    }),
  );
  return done / ((performance.now() - started) / 1000);
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] ?? 0)
    : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

export async function interleave(
  contenders: readonly Contender[],
  options: { rounds: number; roundMs: number; concurrency: number },
): Promise<ThroughputResult[]> {
  const rounds = new Map<string, number[]>(contenders.map((contender) => [contender.name, []]));
  for (const contender of contenders) await measure(contender.op, options.concurrency, 300); // warm-up
  for (let round = 0; round < options.rounds; round++) {
    for (const contender of contenders) {
      rounds.get(contender.name)?.push(await measure(contender.op, options.concurrency, options.roundMs));
    }
  }
  return contenders.map((contender) => {
    const values = rounds.get(contender.name) ?? [];
    return { name: contender.name, opsPerSecond: median(values), rounds: values };
  });
}
