/** The memory store: every behaviour contract, and expiry by an injected clock. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { StoreUnavailableError } from '../../src/errors.js';
import { MemoryStore } from '../../src/store/memory/store.js';
import { runContracts } from '../contracts/matrix.js';
import type { StoreFixture } from '../contracts/store.js';
import { memorySessionFixture } from '../harness/fixtures.js';
import { uniquePrefix } from '../harness/topologies.js';

runContracts('memory', {
  store: () => memoryStoreFixture(),
  sessions: memorySessionFixture,
});

function memoryStoreFixture(): Promise<StoreFixture> {
  const store = new MemoryStore({ keyPrefix: uniquePrefix() });
  return Promise.resolve({
    store,
    inspector: {
      pttl: (key) => Promise.resolve(store.snapshotTtls().get(key) ?? -2),
      // Every entry is written with a TTL by construction; snapshotTtls lists live entries with theirs.
      keysWithoutTtl: () =>
        Promise.resolve([...store.snapshotTtls()].filter(([, ttl]) => !(ttl > 0)).map(([key]) => key)),
      keyCount: () => Promise.resolve(store.snapshotTtls().size),
    },
    teardown: () => Promise.resolve(),
  });
}

describe('memory store expiry', () => {
  it('forgets a key once its TTL has passed (injected clock)', async () => {
    let now = 1_000_000;
    const store = new MemoryStore({ clock: () => now });
    await store.probeReadWrite('p', 'v', 1000);
    assert.equal(store.snapshotTtls().get(store.keys.key('health', 'probe', 'p')), 1000);
    now += 999;
    assert.equal(store.snapshotTtls().size, 1);
    now += 1;
    assert.equal(store.snapshotTtls().size, 0);
  });

  it('sweeps expired entries as writes come in, so memory stays bounded', async () => {
    let now = 0;
    const store = new MemoryStore({ clock: () => now });
    for (let i = 0; i < 5000; i++) {
      await store.probeReadWrite(`k${String(i)}`, 'v', 10);
      now += 1;
    }
    // Entries live 10 ms and a sweep runs every 1000 writes: at most ~1000 remain in the map.
    assert.ok(store.snapshotTtls().size <= 10);
    assert.ok(store.entryCount() <= 1010, `entries ${String(store.entryCount())}`);
  });

  it('is not ready once closed, and refuses calls as Redis would', async () => {
    const store = new MemoryStore();
    assert.ok(store.isReady());
    await store.close();
    assert.ok(!store.isReady());
    await assert.rejects(store.probeReadWrite('p', 'v', 1000), StoreUnavailableError);
  });
});
