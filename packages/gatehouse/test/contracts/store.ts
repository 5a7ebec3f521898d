/**
 * The behavioural contract every Store must keep, run against the memory store and against
 * Redis on each topology (./matrix.ts). A primitive's store operations get their cases here.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import type { Store } from '../../src/store/store.js';

/** What the suite needs to look behind the store's back. */
export interface StoreInspector {
  /** Remaining TTL in ms; -2 when the key does not exist, -1 when it has no TTL. */
  pttl(key: string): Promise<number>;
  /** Every key under the store's prefix with no TTL (must always be empty). */
  keysWithoutTtl(): Promise<string[]>;
  /** How many keys exist under the store's prefix. */
  keyCount(): Promise<number>;
}

export interface StoreFixture {
  readonly store: Store;
  readonly inspector: StoreInspector;
  /** Cleans up what setup started; the suite closes the store itself first. */
  teardown(): Promise<void>;
}

export function storeSuite(name: string, setup: () => Promise<StoreFixture>): void {
  describe(`store contract: ${name}`, () => {
    let fixture: StoreFixture;
    let store: Store;

    before(async () => {
      fixture = await setup();
      store = fixture.store;
      await store.waitUntilReady(5000);
    });

    after(async () => {
      // The every-key-has-a-TTL rule, over everything the cases below wrote.
      assert.deepEqual(await fixture.inspector.keysWithoutTtl(), []);
      assert.ok((await fixture.inspector.keyCount()) > 0, 'the suite wrote keys to check');
      await store.close();
      await fixture.teardown();
    });

    it('builds keys as <prefix>:<area>.v<version>:<parts>', () => {
      assert.equal(store.keys.key('health', 'probe', 'a'), `${store.keys.prefix}:health.v1:probe:a`);
    });

    it('probeReadWrite reads back what it wrote and reports the server clock', async () => {
      const before = Date.now();
      const result = await store.probeReadWrite('suite', 'value-1', 60_000);
      assert.equal(result.value, 'value-1');
      assert.ok(
        Math.abs(result.serverTimeMs - before) < 5000,
        `server clock ${String(result.serverTimeMs)} near ${String(before)}`,
      );
    });

    it('probeReadWrite sets the TTL it was given', async () => {
      await store.probeReadWrite('ttl', 'v', 30_000);
      const ttl = await fixture.inspector.pttl(store.keys.key('health', 'probe', 'ttl'));
      assert.ok(ttl > 25_000 && ttl <= 30_000, `ttl ${String(ttl)} within (25000, 30000]`);
    });

    it('refuses a missing, zero, negative or fractional TTL without writing', async () => {
      for (const ttlMs of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
        await assert.rejects(store.probeReadWrite('bad-ttl', 'v', ttlMs), RangeError);
      }
      assert.equal(await fixture.inspector.pttl(store.keys.key('health', 'probe', 'bad-ttl')), -2);
    });

    it('is atomic: concurrent probes of one key each read back their own value', async () => {
      const values = Array.from({ length: 40 }, (_, i) => `v${String(i)}`);
      const results = await Promise.all(values.map((value) => store.probeReadWrite('race', value, 60_000)));
      assert.deepEqual(
        results.map((result) => result.value),
        values,
      );
    });

    it('refuses key parts that would break hash tags or logs', async () => {
      for (const probeId of ['', 'a{b}', 'a b', 'a\nb', 'x'.repeat(300)]) {
        await assert.rejects(store.probeReadWrite(probeId, 'v', 1000), { code: 'GH_ERR_STORE_KEY_INVALID' });
      }
    });

    it('reports health with its mode and a latency', async () => {
      const health = await store.health();
      assert.equal(health.status, 'up');
      assert.equal(health.mode, store.mode);
      assert.equal(typeof health.latencyMs, 'number');
      assert.ok(store.isReady());
    });
  });
}
