/**
 * Coalesces calls made in the same turn of the event loop into batches, so that one round trip
 * (and one script call on the server) carries many of them. A server handles the requests that
 * arrive together in one turn of the loop; their calls are sent together right after it
 * (`setImmediate`), or as soon as a batch is full. Nothing waits for an earlier batch's reply:
 * batches are pipelined, so a lone call costs no more than a turn of the loop.
 *
 * Each call gets its own result; when the batch fails, every call in it fails with that error.
 */
export interface BatcherOptions<In, Out> {
  /** Runs one batch; must return one result per input, in order. */
  readonly run: (inputs: readonly In[]) => Promise<readonly Out[]>;
  /** Most calls in one batch. */
  readonly maxCalls: number;
  /** Most total weight in one batch (e.g. keys); one call heavier than this still goes alone. */
  readonly maxWeight: number;
  readonly weigh: (input: In) => number;
}

interface Pending<In, Out> {
  readonly input: In;
  readonly resolve: (value: Out) => void;
  readonly reject: (error: unknown) => void;
}

export class Batcher<In, Out> {
  private pending: Pending<In, Out>[] = [];
  private pendingWeight = 0;
  private scheduled = false;

  constructor(private readonly options: BatcherOptions<In, Out>) {
    if (!Number.isSafeInteger(options.maxCalls) || options.maxCalls < 1)
      throw new RangeError('maxCalls must be a positive integer');
    if (!Number.isSafeInteger(options.maxWeight) || options.maxWeight < 1)
      throw new RangeError('maxWeight must be a positive integer');
  }

  add(input: In): Promise<Out> {
    return new Promise<Out>((resolve, reject) => {
      const weight = this.options.weigh(input);
      if (this.pending.length > 0 && this.pendingWeight + weight > this.options.maxWeight) this.flush();
      this.pending.push({ input, resolve, reject });
      this.pendingWeight += weight;
      if (this.pending.length >= this.options.maxCalls || this.pendingWeight >= this.options.maxWeight) {
        this.flush();
      } else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          this.flush();
        });
      }
    });
  }

  /** Sends what is pending now. */
  private flush(): void {
    const batch = this.pending;
    if (batch.length === 0) return;
    this.pending = [];
    this.pendingWeight = 0;
    let running: Promise<readonly Out[]>;
    try {
      running = this.options.run(batch.map((call) => call.input));
    } catch (error) {
      for (const call of batch) call.reject(error);
      return;
    }
    running.then(
      (results) => {
        if (results.length !== batch.length) {
          const error = new Error(
            `a batch of ${String(batch.length)} calls returned ${String(results.length)} results`,
          );
          for (const call of batch) call.reject(error);
          return;
        }
        batch.forEach((call, i) => {
          call.resolve(results[i] as Out);
        });
      },
      (error: unknown) => {
        for (const call of batch) call.reject(error);
      },
    );
  }
}

/**
 * One Batcher per group (on Redis Cluster, per hash slot: a script may only touch keys of one
 * slot), made on first use. There are at most as many groups as slots.
 */
export class GroupedBatcher<In, Out> {
  private readonly groups = new Map<string | number, Batcher<In, Out>>();

  constructor(private readonly options: BatcherOptions<In, Out>) {}

  add(group: string | number, input: In): Promise<Out> {
    let batcher = this.groups.get(group);
    if (!batcher) {
      batcher = new Batcher(this.options);
      this.groups.set(group, batcher);
    }
    return batcher.add(input);
  }
}
