/**
 * Idle and absolute timeouts with an injected clock (the memory store's), hours in no time.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { KeyRing } from '../../src/crypto/keyring.js';
import { StoreUnavailableError } from '../../src/errors.js';
import { Sessions } from '../../src/sessions/sessions.js';
import { MemoryStore } from '../../src/store/memory/store.js';

const MINUTE = 60_000;

function setup() {
  const clock = { now: Date.now() };
  const store = new MemoryStore({ clock: () => clock.now });
  const sessions = new Sessions(store, KeyRing.random(), { touchInterval: '60s', localCacheTtl: 0 });
  return { clock, store, sessions };
}

describe('session timeouts on an injected clock', () => {
  it('ends a session idle for 30 minutes, and keeps an active one alive', async () => {
    const { clock, sessions } = setup();
    const { token } = await sessions.create({ userId: 'u-idle' });
    clock.now += 29 * MINUTE;
    assert.ok(await sessions.validate(token), 'alive after 29 idle minutes');
    clock.now += 29 * MINUTE;
    assert.ok(await sessions.validate(token), 'the validation at 29 min moved the idle deadline');
    clock.now += 30 * MINUTE;
    assert.deepEqual(await sessions.validateWithReason(token), { session: null, reason: 'expired-idle' });
    await sessions.close();
  });

  it('ends a session at 12 hours however active it is', async () => {
    const { clock, sessions } = setup();
    const { token, session } = await sessions.create({ userId: 'u-absolute' });
    while (clock.now < session.absoluteExpiresAtMs - 20 * MINUTE) {
      clock.now += 20 * MINUTE;
      assert.ok(await sessions.validate(token));
    }
    clock.now = session.absoluteExpiresAtMs;
    assert.deepEqual(await sessions.validateWithReason(token), { session: null, reason: 'expired-absolute' });
    await sessions.close();
  });

  it('forgets expired sessions from the index without notifications, keeping why they ended', async () => {
    const { clock, sessions } = setup();
    const first = await sessions.create({ userId: 'u-index' });
    await sessions.create({ userId: 'u-index' });
    clock.now += 31 * MINUTE;
    assert.deepEqual(await sessions.list('u-index'), []);
    assert.deepEqual(await sessions.validateWithReason(first.token), {
      session: null,
      reason: 'expired-idle',
    });
    const next = await sessions.create({ userId: 'u-index' });
    assert.deepEqual(
      (await sessions.list('u-index')).map((session) => session.handle),
      [next.session.handle],
    );
    await sessions.close();
  });

  it('refuses malformed tokens without asking the store, and fails loudly when the store is gone', async () => {
    const { store, sessions } = setup();
    const { token } = await sessions.create({ userId: 'u-closed' });
    await store.close();
    assert.equal(await sessions.validate('not-a-token'), null, 'no store call for a malformed token');
    await assert.rejects(sessions.validate(token), StoreUnavailableError, 'never "valid" without the store');
    await sessions.close();
  });

  it('writes activity once per touch interval, not on every validation', async () => {
    const { clock, sessions } = setup();
    const { token, session } = await sessions.create({ userId: 'u-touch' });
    clock.now += 10_000;
    await sessions.validate(token);
    const [listed] = await sessions.list('u-touch');
    assert.equal(listed?.lastSeenAtMs, clock.now, 'this instance shows its buffered activity');
    clock.now += 60_000;
    const touched = await sessions.validate(token);
    assert.equal(touched?.lastSeenAtMs, clock.now);
    assert.equal(touched.requestCount, 2, 'both requests counted once written');
    assert.ok(touched.idleExpiresAtMs > session.idleExpiresAtMs);
    await sessions.close();
  });
});
