/**
 * The sessions contract, run against the memory store, standalone Redis and Cluster.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { KeyRing } from '../../src/crypto/keyring.js';
import {
  Sessions,
  TOKEN_LENGTH,
  type SessionAuditEvent,
  type SessionEndedEvent,
  type SessionsOptions,
} from '../../src/sessions/sessions.js';
import type { Store } from '../../src/store/store.js';

export interface SessionFixture {
  readonly store: Store;
  /** Another instance's store on the same data (the same object for the memory store). */
  otherStore(): Store;
  /** Every key under the store's prefix and its value as text (latin1 for binary). */
  dump(): Promise<Map<string, string>>;
  /** Keys under the store's prefix without a TTL (must stay empty). */
  keysWithoutTtl(): Promise<string[]>;
  teardown(): Promise<void>;
}

const USER_AGENT = `Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36 ${'x'.repeat(8)}`;

export function sessionSuite(name: string, setup: () => Promise<SessionFixture>): void {
  describe(`sessions: ${name}`, () => {
    let fixture: SessionFixture;
    const keyRing = KeyRing.random();
    const opened: Sessions[] = [];
    const otherStores: Store[] = [];

    /** Sessions on another instance: its own store connection to the same data. */
    async function otherInstance(): Promise<Sessions> {
      const store = fixture.otherStore();
      otherStores.push(store);
      await store.waitUntilReady(5000);
      const instance = new Sessions(store, keyRing);
      opened.push(instance);
      return instance;
    }

    function sessions(options: SessionsOptions = {}): Sessions {
      const instance = new Sessions(fixture.store, keyRing, options);
      opened.push(instance);
      return instance;
    }

    async function waitUntil(check: () => Promise<boolean>, timeoutMs = 2000): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      while (!(await check())) {
        if (Date.now() > deadline) assert.fail(`not within ${String(timeoutMs)} ms`);
        await sleep(1);
      }
    }

    function user() {
      return {
        userId: randomUUID(),
        organizationId: randomUUID(),
        roles: ['clinician'],
        ip: '203.0.113.77',
        userAgent: USER_AGENT,
      };
    }

    before(async () => {
      fixture = await setup();
      await fixture.store.waitUntilReady(5000);
    });

    after(async () => {
      for (const instance of opened) await instance.close();
      for (const store of otherStores) if (store !== fixture.store) await store.close();
      assert.deepEqual(await fixture.keysWithoutTtl(), []);
      await fixture.store.close();
      await fixture.teardown();
    });

    it('creates a session and validates its token', async () => {
      const gh = sessions();
      const input = {
        ...user(),
        permissions: ['forms:read'],
        authMethod: 'password',
        data: { theme: 'dark' },
      };
      const { token, session } = await gh.create(input);
      assert.equal(token.length, TOKEN_LENGTH);
      assert.match(token, /^[A-Za-z0-9_-]+$/);
      assert.equal(session.userId, input.userId);
      assert.equal(session.organizationId, input.organizationId);
      assert.deepEqual(session.roles, ['clinician']);
      assert.deepEqual(session.permissions, ['forms:read']);
      assert.deepEqual(session.data, { theme: 'dark' });
      assert.equal(session.ip, input.ip);
      assert.equal(session.userAgent, USER_AGENT);
      assert.ok(!token.includes(session.handle) && !session.handle.includes(token));
      assert.ok(Math.abs(session.createdAtMs - Date.now()) < 5000);
      assert.equal(session.absoluteExpiresAtMs - session.createdAtMs, 12 * 3_600_000);
      assert.equal(session.idleExpiresAtMs - session.createdAtMs, 30 * 60_000);
      const validated = await gh.validate(token);
      assert.equal(validated?.handle, session.handle);
      assert.equal(validated.userId, input.userId);
      assert.deepEqual(validated.data, { theme: 'dark' });
    });

    it('stores no token, identifier or personal data in clear', async () => {
      const gh = sessions();
      const input = user();
      const { token, session } = await gh.create(input);
      await gh.validate(token);
      const dump = [...(await fixture.dump())].map(([key, value]) => `${key} ${value}`).join('\n');
      for (const secret of [
        token,
        token.slice(16),
        input.userId,
        input.organizationId,
        input.ip,
        'Mozilla',
        'clinician',
      ]) {
        assert.ok(!dump.includes(secret), `${secret} does not appear in the store`);
      }
      assert.ok(dump.includes(session.handle.slice(16)), 'the token hash names the session');
    });

    it('refuses malformed tokens before any store call, and unknown ones with no reason', async () => {
      const gh = sessions();
      const { token } = await gh.create(user());
      for (const bad of [
        '',
        'short',
        `${token}x`,
        token.slice(1),
        `${token.slice(0, -1)}!`,
        42,
        null,
        undefined,
        { token },
      ]) {
        assert.deepEqual(await gh.validateWithReason(bad), { session: null, reason: null });
      }
      const unknown = token.slice(0, 16) + 'A'.repeat(TOKEN_LENGTH - 16);
      assert.deepEqual(await gh.validateWithReason(unknown), { session: null, reason: null });
    });

    it('lists a user’s sessions oldest first, by handle, and revokes one of them', async () => {
      const audit: SessionAuditEvent[] = [];
      const gh = sessions({ audit: (event) => audit.push(event) });
      const input = user();
      const first = await gh.create(input);
      const second = await gh.create(input);
      const listed = await gh.list(input.userId);
      assert.deepEqual(
        listed.map((session) => session.handle),
        [first.session.handle, second.session.handle],
      );
      assert.ok(!JSON.stringify(listed).includes(first.token));
      assert.equal(await gh.revoke(first.session.handle, { userId: randomUUID() }), false, 'not that user’s');
      assert.equal(await gh.revoke('not-a-handle'), false);
      assert.equal(await gh.revoke(first.session.handle, { userId: input.userId }), true);
      assert.equal(await gh.revoke(first.session.handle), false, 'already ended');
      assert.deepEqual(await gh.validateWithReason(first.token), { session: null, reason: 'revoked' });
      assert.equal((await gh.validate(second.token))?.handle, second.session.handle);
      assert.deepEqual(
        (await gh.list(input.userId)).map((session) => session.handle),
        [second.session.handle],
      );
      const revoked = audit.find((event) => event.type === 'session.revoked');
      assert.equal(revoked?.userId, input.userId);
      assert.ok(
        !JSON.stringify(audit).includes(first.session.handle),
        'audit carries a hash, not the handle',
      );
    });

    it('revokes all of a user’s sessions, or all but the current one, on every instance', async () => {
      const a = sessions();
      const b = sessions();
      const input = user();
      const tokens = await Promise.all([1, 2, 3].map(() => a.create(input)));
      const [current, ...others] = tokens;
      assert.ok(current);
      assert.equal(await b.revokeOthers(input.userId, current.session.handle), 2);
      for (const other of others)
        assert.deepEqual(await a.validateWithReason(other.token), { session: null, reason: 'revoked' });
      assert.ok(await a.validate(current.token));
      await assert.rejects(b.revokeOthers(randomUUID(), current.session.handle), TypeError);
      assert.equal(await b.revokeAll(input.userId), 1);
      // Instance a may have the session cached: the ended event reaches it within milliseconds.
      await waitUntil(async () => (await a.validate(current.token)) === null, 100);
      assert.deepEqual(await a.list(input.userId), []);
    });

    it('ends the oldest session beyond the per-user limit and says why', async () => {
      const audit: SessionAuditEvent[] = [];
      const gh = sessions({ maxPerUser: 3, audit: (event) => audit.push(event) });
      const input = user();
      const created = [];
      for (let i = 0; i < 4; i++) created.push(await gh.create(input));
      const [oldest, ...rest] = created;
      assert.ok(oldest);
      assert.deepEqual(await gh.validateWithReason(oldest.token), { session: null, reason: 'evicted-limit' });
      for (const session of rest) assert.ok(await gh.validate(session.token));
      assert.equal(audit.filter((event) => event.type === 'session.evicted').length, 1);
    });

    it('keeps exactly the limit under 100 concurrent creates, and the index agrees with the live keys', async () => {
      const gh = sessions({ maxPerUser: 5 });
      const input = user();
      const created = await Promise.all(Array.from({ length: 100 }, () => gh.create(input)));
      const valid = (await Promise.all(created.map(({ token }) => gh.validate(token)))).filter(
        (s) => s !== null,
      );
      assert.equal(valid.length, 5);
      const listed = await gh.list(input.userId);
      assert.deepEqual(listed.map((s) => s.handle).sort(), valid.map((s) => s.handle).sort());
      const pseudonym = gh.userPseudonym(input.userId);
      const sessionKeys = [...(await fixture.dump()).keys()].filter((key) =>
        key.includes(`{${pseudonym}}:s:`),
      );
      assert.deepEqual(
        sessionKeys.map((key) => key.slice(key.lastIndexOf(':') + 1)).sort(),
        valid.map((s) => s.handle.slice(16)).sort(),
      );
    });

    it('rotates a token: same data and lifetime, the old token dead at once', async () => {
      const gh = sessions();
      const input = { ...user(), data: { step: 1 } };
      const { token, session } = await gh.create(input);
      const rotated = await gh.rotate(token);
      assert.ok(rotated);
      assert.notEqual(rotated.token, token);
      assert.notEqual(rotated.session.handle, session.handle);
      assert.equal(rotated.session.createdAtMs, session.createdAtMs);
      assert.equal(rotated.session.absoluteExpiresAtMs, session.absoluteExpiresAtMs);
      assert.deepEqual(rotated.session.data, { step: 1 });
      assert.deepEqual(await gh.validateWithReason(token), { session: null, reason: 'rotated' });
      assert.equal((await gh.validate(rotated.token))?.userId, input.userId);
      assert.equal(await gh.rotate(token), null);
      assert.deepEqual(
        (await gh.list(input.userId)).map((s) => s.handle),
        [rotated.session.handle],
      );
    });

    it('expires an idle session and says so (real 1 s timeout)', async () => {
      const gh = sessions({ idleTimeout: '1s', absoluteTimeout: '10s', touchInterval: 0 });
      const { token } = await gh.create(user());
      await sleep(600);
      assert.ok(await gh.validate(token), 'activity slides the idle deadline');
      await sleep(600);
      assert.ok(await gh.validate(token), 'still alive 1.2 s after creation');
      await sleep(1100);
      assert.deepEqual(await gh.validateWithReason(token), { session: null, reason: 'expired-idle' });
    });

    it('audits an expiry once, however often and wherever the expired token is presented (real 1 s timeout)', async () => {
      const events: SessionAuditEvent[] = [];
      const options: SessionsOptions = {
        idleTimeout: '1s',
        absoluteTimeout: '10s',
        touchInterval: 0,
        audit: (event) => events.push(event),
      };
      const a = sessions(options);
      const otherStore = fixture.otherStore();
      otherStores.push(otherStore);
      await otherStore.waitUntilReady(5000);
      const b = new Sessions(otherStore, keyRing, options);
      opened.push(b);
      const { token, session } = await a.create(user());
      assert.ok(await b.validate(token));
      await sleep(1200);
      // At once on two instances, then one after another: the store ends the session once.
      const expired = { session: null, reason: 'expired-idle' };
      const together = await Promise.all([a, b, a, b].map((instance) => instance.validateWithReason(token)));
      for (const result of together) assert.deepEqual(result, expired);
      for (const instance of [a, b, a, b, a])
        assert.deepEqual(await instance.validateWithReason(token), expired);
      const expiries = events.filter((event) => event.type.startsWith('session.expired'));
      assert.equal(expiries.length, 1, JSON.stringify(expiries));
      assert.equal(expiries[0]?.type, 'session.expired-idle');
      assert.equal(expiries[0].sessionHash, keyRing.auditHash(session.handle));
    });

    it('expires a session at its absolute timeout however active it is (real 2 s timeout)', async () => {
      const gh = sessions({ idleTimeout: '1s', absoluteTimeout: '2s', touchInterval: 0 });
      const { token } = await gh.create(user());
      const deadline = Date.now() + 2600;
      let reason: string | null = null;
      while (Date.now() < deadline) {
        const result = await gh.validateWithReason(token);
        if (!result.session) {
          reason = result.reason;
          break;
        }
        await sleep(250);
      }
      assert.equal(reason, 'expired-absolute');
    });

    it('writes activity at most once per touch interval and flushes buffered counts', async () => {
      const a = sessions({ touchInterval: '60s' });
      const b = sessions({ touchInterval: '60s' });
      const input = user();
      const { token, session } = await a.create(input);
      for (let i = 0; i < 5; i++) await a.validate(token);
      const seenByOther = (await b.list(input.userId))[0];
      assert.equal(seenByOther?.requestCount, 0, 'nothing written yet');
      assert.equal(seenByOther.lastSeenAtMs, session.createdAtMs);
      const seenHere = await a.validate(token);
      assert.equal(seenHere?.requestCount, 6, 'this instance counts its buffered requests');
      await a.flush();
      assert.equal((await b.list(input.userId))[0]?.requestCount, 6);
      assert.ok((await b.list(input.userId))[0]?.lastSeenAtMs ?? 0 >= session.createdAtMs);
    });

    it('validates by handle for verified credentials, counting the use, and refuses ended or malformed handles', async () => {
      const a = sessions();
      const input = user();
      const { token, session } = await a.create(input);
      const byHandle = await a.validateHandle(session.handle);
      assert.equal(byHandle.session?.userId, input.userId);
      assert.equal(byHandle.session.handle, session.handle);
      await a.flush();
      const listed = (await a.list(input.userId)).find((entry) => entry.handle === session.handle);
      assert.ok((listed?.requestCount ?? 0) >= 1, 'the use counts as activity');
      assert.deepEqual(await a.validateHandle('not a handle'), { session: null, reason: null });
      assert.deepEqual(
        await a.validateHandle(token),
        { session: null, reason: null },
        'a token is not a handle',
      );
      await a.revoke(session.handle);
      assert.equal((await a.validateHandle(session.handle)).session, null);
    });

    it('tells another instance that a session ended within 100 ms, for every way a session ends', async () => {
      const a = sessions({ maxPerUser: 2 });
      const b = await otherInstance();
      const received: Array<{ event: SessionEndedEvent; atMs: number }> = [];
      const stop = await b.onEnded((event) => received.push({ event, atMs: performance.now() }));
      const next = async (
        action: () => Promise<unknown>,
      ): Promise<{ event: SessionEndedEvent; latencyMs: number }> => {
        const before = received.length;
        const started = performance.now();
        await action();
        const deadline = Date.now() + 2000;
        while (received.length === before && Date.now() < deadline) await sleep(1);
        const entry = received[before];
        assert.ok(entry, 'an event arrived');
        return { event: entry.event, latencyMs: entry.atMs - started };
      };
      const input = user();
      const first = await a.create(input);
      const revoked = await next(() => a.revoke(first.session.handle));
      assert.deepEqual(revoked.event, { handle: first.session.handle, reason: 'revoked' });
      assert.ok(revoked.latencyMs < 100, `seen after ${revoked.latencyMs.toFixed(1)} ms`);

      const second = await a.create(input);
      const rotated = await next(() => a.rotate(second.token));
      assert.deepEqual(rotated.event, { handle: second.session.handle, reason: 'rotated' });
      assert.ok(rotated.latencyMs < 100, `seen after ${rotated.latencyMs.toFixed(1)} ms`);

      const third = await a.create(input);
      const oldest = (await a.list(input.userId))[0];
      assert.ok(oldest && oldest.handle !== third.session.handle);
      const evicted = await next(() => a.create(input));
      assert.deepEqual(evicted.event, { handle: oldest.handle, reason: 'evicted-limit' });
      assert.ok(evicted.latencyMs < 100, `seen after ${evicted.latencyMs.toFixed(1)} ms`);

      const fourth = await a.create(user());
      const signedOut = await next(() => a.revoke(fourth.session.handle, { cause: 'signout' }));
      assert.deepEqual(signedOut.event, {
        handle: fourth.session.handle,
        reason: 'revoked',
        cause: 'signout',
      });
      await assert.rejects(a.revoke(fourth.session.handle, { cause: 'Sign Out!' }), TypeError);

      const all = await next(() => a.revokeAll(input.userId));
      assert.equal(all.event.reason, 'revoked');
      assert.ok(all.latencyMs < 100, `seen after ${all.latencyMs.toFixed(1)} ms`);

      await stop();
      const count = received.length;
      await a.revoke((await a.create(input)).session.handle);
      await sleep(50);
      assert.equal(received.length, count, 'no events after stop');
    });

    it('restores a lost session into the store (cache refill) unless it ended', async () => {
      const gh = sessions();
      const input = user();
      const { token, session } = await gh.create(input);
      const uid = gh.userPseudonym(input.userId);
      const ref = { uid, tokenHash: session.handle.slice(16) };
      const limits = {
        idleTimeoutMs: 1_800_000,
        absoluteTimeoutMs: 43_200_000,
        maxPerUser: 5,
        reasonTtlMs: 43_200_000,
      };
      const [stored] = await fixture.store.listSessions(uid, limits);
      assert.ok(stored);
      await fixture.store.discardSessions(uid, [ref.tokenHash]);
      assert.deepEqual(await gh.validateWithReason(token), { session: null, reason: null }, 'lost');
      assert.equal(await fixture.store.restoreSession(ref, stored, limits), true);
      assert.equal((await gh.validate(token))?.handle, session.handle, 'back');
      assert.equal(await fixture.store.restoreSession(ref, stored, limits), true, 'already there');
      assert.ok(await gh.revoke(session.handle));
      assert.equal(await fixture.store.restoreSession(ref, stored, limits), false, 'ended: never restored');
      assert.deepEqual(await gh.validateWithReason(token), { session: null, reason: 'revoked' });
    });

    it('answers repeat validations from the local cache, and drops a session ended elsewhere at once', async () => {
      const a = sessions();
      const b = await otherInstance();
      const { token, session } = await a.create(user());
      // The first validation starts listening; once listening, the next one is cached.
      await waitUntil(async () => (await b.validate(token)) !== null && b.localCacheActive);
      assert.ok(await b.validate(token));
      const started = performance.now();
      assert.ok(await a.revoke(session.handle));
      await waitUntil(async () => (await b.validate(token)) === null, 100);
      assert.ok(performance.now() - started < 100, 'refused by the other instance within 100 ms');
    });

    it('bounds the cache by its TTL even when no event arrives', async () => {
      const b = sessions({ localCacheTtl: '300ms' });
      const input = user();
      const { token, session } = await b.create(input);
      // The first validation starts listening; once listening, the next one is cached.
      await waitUntil(async () => (await b.validate(token)) !== null && b.localCacheActive);
      assert.ok(await b.validate(token));
      // Ended behind the instance's back (no event): the cache may answer, but only until its TTL.
      const ref = { uid: b.userPseudonym(input.userId), tokenHash: session.handle.slice(16) };
      await fixture.store.revokeSession(ref, 'revoked', 60_000);
      assert.ok(await b.validate(token), 'served from the cache');
      await sleep(350);
      assert.deepEqual(await b.validateWithReason(token), { session: null, reason: 'revoked' });
    });

    it('refuses a payload sealed by a key no longer in the ring', async () => {
      const original = sessions();
      const { token } = await original.create(user());
      const otherRing = new Sessions(fixture.store, KeyRing.random());
      opened.push(otherRing);
      assert.equal(await otherRing.validate(token), null);
    });
  });
}
