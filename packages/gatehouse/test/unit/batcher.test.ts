/**
 * The batcher behind rate-limit checks: calls of one turn of the event loop share a batch, full
 * batches go at once, each call gets its own result, and a failed batch fails only its calls.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';

import { Batcher } from '../../src/store/batcher.js';

function recording(options: { maxCalls?: number; maxWeight?: number } = {}) {
  const batches: number[][] = [];
  const batcher = new Batcher<number, string>({
    run: (inputs) => {
      batches.push([...inputs]);
      return Promise.resolve(inputs.map((input) => `result ${String(input)}`));
    },
    maxCalls: options.maxCalls ?? 100,
    maxWeight: options.maxWeight ?? 1000,
    weigh: (input) => input,
  });
  return { batcher, batches };
}

describe('Batcher', () => {
  it('sends the calls of one turn of the event loop as one batch, each with its own result', async () => {
    const { batcher, batches } = recording();
    const results = await Promise.all([1, 2, 3].map((input) => batcher.add(input)));
    assert.deepEqual(results, ['result 1', 'result 2', 'result 3']);
    assert.deepEqual(batches, [[1, 2, 3]]);
    await batcher.add(4);
    assert.deepEqual(batches, [[1, 2, 3], [4]], 'a later call goes in a later batch');
  });

  it('sends a full batch at once, by number of calls and by weight', async () => {
    const byCalls = recording({ maxCalls: 2 });
    const calls = [1, 1, 1, 1, 1].map((input) => byCalls.batcher.add(input));
    assert.deepEqual(byCalls.batches, [
      [1, 1],
      [1, 1],
    ]);
    await Promise.all(calls);
    assert.deepEqual(byCalls.batches, [[1, 1], [1, 1], [1]]);

    const byWeight = recording({ maxWeight: 10 });
    await Promise.all([4, 4, 4, 20, 1].map((input) => byWeight.batcher.add(input)));
    assert.deepEqual(byWeight.batches, [[4, 4], [4], [20], [1]], 'a call heavier than the limit goes alone');
  });

  it('fails every call of a failed batch, and only those', async () => {
    let fail = true;
    const batcher = new Batcher<number, number>({
      run: (inputs) => (fail ? Promise.reject(new Error('down')) : Promise.resolve(inputs)),
      maxCalls: 10,
      maxWeight: 10,
      weigh: () => 1,
    });
    const failed = await Promise.allSettled([batcher.add(1), batcher.add(2)]);
    assert.deepEqual(
      failed.map((result) => result.status),
      ['rejected', 'rejected'],
    );
    fail = false;
    assert.equal(await batcher.add(3), 3);
  });

  it('fails the batch when run throws or returns the wrong number of results', async () => {
    const throwing = new Batcher<number, number>({
      run: () => {
        throw new Error('sync');
      },
      maxCalls: 10,
      maxWeight: 10,
      weigh: () => 1,
    });
    await assert.rejects(throwing.add(1), /sync/);
    const short = new Batcher<number, number>({
      run: () => Promise.resolve([1]),
      maxCalls: 10,
      maxWeight: 10,
      weigh: () => 1,
    });
    const results = await Promise.allSettled([short.add(1), short.add(2)]);
    for (const result of results) {
      assert.equal(result.status, 'rejected');
      assert.match(String(result.reason), /2 calls returned 1 results/);
    }
  });

  it('keeps batches in flight side by side (a batch never waits for an earlier reply)', async () => {
    const releases: (() => void)[] = [];
    const batcher = new Batcher<number, number>({
      run: (inputs) =>
        new Promise((resolve) => {
          releases.push(() => {
            resolve(inputs);
          });
        }),
      maxCalls: 10,
      maxWeight: 10,
      weigh: () => 1,
    });
    const first = batcher.add(1);
    await nextTurn();
    const second = batcher.add(2);
    await nextTurn();
    assert.equal(releases.length, 2, 'both batches were sent');
    for (const release of releases.reverse()) release();
    assert.deepEqual(await Promise.all([first, second]), [1, 2]);
  });

  it('refuses nonsense limits', () => {
    const run = () => Promise.resolve([]);
    assert.throws(() => new Batcher({ run, maxCalls: 0, maxWeight: 1, weigh: () => 1 }), RangeError);
    assert.throws(() => new Batcher({ run, maxCalls: 1, maxWeight: 0.5, weigh: () => 1 }), RangeError);
  });
});
