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
  /** CPU time of this process per operation (µs, median of rounds): client work, GC included. */
  readonly clientCpuUsPerOp: number;
  /** CPU time of the Redis server per operation (µs, median of rounds), when `serverCpuMs` was given. */
  readonly serverCpuUsPerOp: number | null;
}

interface Round {
  readonly opsPerSecond: number;
  readonly clientCpuUsPerOp: number;
  readonly serverCpuUsPerOp: number | null;
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
  serverCpuMs?: () => Promise<number>,
): Promise<Round> {
  let next = 0;
  let done = 0;
  const serverBefore = serverCpuMs ? await serverCpuMs() : 0;
  const cpuBefore = process.cpuUsage();
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
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  const serverAfter = serverCpuMs ? await serverCpuMs() : 0;
  return {
    opsPerSecond: done / seconds,
    clientCpuUsPerOp: (cpu.user + cpu.system) / done,
    serverCpuUsPerOp: serverCpuMs ? ((serverAfter - serverBefore) * 1000) / done : null,
  };
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
  /** The Redis server's CPU time so far (ms), to count its share per operation. */
  serverCpuMs?: () => Promise<number>,
): Promise<ThroughputResult[]> {
  const rounds = new Map<string, Round[]>(contenders.map((contender) => [contender.name, []]));
  for (const contender of contenders) await measure(contender.op, options.concurrency, 300); // warm-up
  for (let round = 0; round < options.rounds; round++) {
    for (const contender of contenders) {
      rounds
        .get(contender.name)
        ?.push(await measure(contender.op, options.concurrency, options.roundMs, serverCpuMs));
    }
  }
  return contenders.map((contender) => {
    const values = rounds.get(contender.name) ?? [];
    const server = values.flatMap((round) =>
      round.serverCpuUsPerOp === null ? [] : [round.serverCpuUsPerOp],
    );
    return {
      name: contender.name,
      opsPerSecond: median(values.map((round) => round.opsPerSecond)),
      rounds: values.map((round) => round.opsPerSecond),
      clientCpuUsPerOp: median(values.map((round) => round.clientCpuUsPerOp)),
      serverCpuUsPerOp: server.length === 0 ? null : median(server),
    };
  });
}

/** The CPU time (ms) a Redis server has used so far, from INFO cpu. */
export async function redisCpuMs(info: () => Promise<string>): Promise<number> {
  const text = await info();
  const user = /used_cpu_user:([\d.]+)/.exec(text)?.[1] ?? '0';
  const system = /used_cpu_sys:([\d.]+)/.exec(text)?.[1] ?? '0';
  return (Number(user) + Number(system)) * 1000;
}
