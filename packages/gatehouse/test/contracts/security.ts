/**
 * CSRF, nonces, idempotency keys and the revocation list, run against the memory store,
 * standalone Redis and Cluster. Every raw token, nonce and identifier the suite makes is collected, and the keyspace
 * is scanned at the end for any of them.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { KeyRing } from '../../src/crypto/keyring.js';
import { Csrf, type CsrfAuditEvent, type CsrfOptions } from '../../src/csrf/csrf.js';
import { StoreUnavailableError } from '../../src/errors.js';
import { Idempotency } from '../../src/idempotency/idempotency.js';
import { Nonces } from '../../src/nonces/nonces.js';
import { Revocations } from '../../src/revocation/revocation.js';
import { Sessions } from '../../src/sessions/sessions.js';
import { MemoryStore } from '../../src/store/memory/store.js';
import type { Store } from '../../src/store/store.js';
import type { SessionFixture } from './sessions.js';

const OWN = 'https://forms.example.com';

export function securitySuite(name: string, setup: () => Promise<SessionFixture>): void {
  describe(`csrf, nonces, revocation: ${name}`, () => {
    let fixture: SessionFixture;
    let store: Store;
    const keyRing = KeyRing.random();
    /** Everything that must never appear in the store in clear. */
    const secrets: string[] = [];
    const closeLater: Array<{ close(): Promise<void> }> = [];

    function csrf(options: Partial<CsrfOptions> = {}): Csrf {
      return new Csrf(store, keyRing, {
        ownOrigin: OWN,
        trustedOrigins: ['https://admin.example.com'],
        ...options,
      });
    }

    /** A store that is down (closed), for fail-open and fail-closed checks. */
    async function downStore(): Promise<Store> {
      const other = fixture.otherStore();
      const down = other === store ? new MemoryStore({ keyPrefix: store.keys.prefix }) : other;
      await down.close();
      return down;
    }

    async function newSession() {
      const sessions = new Sessions(store, keyRing);
      closeLater.push(sessions);
      const userId = randomUUID();
      secrets.push(userId);
      const created = await sessions.create({ userId });
      secrets.push(created.token);
      return { sessions, ...created };
    }

    before(async () => {
      fixture = await setup();
      store = fixture.store;
      await store.waitUntilReady(5000);
    });

    after(async () => {
      for (const closable of closeLater) await closable.close();
      const dump = [...(await fixture.dump())].map(([key, value]) => `${key} ${value}`).join('\n');
      assert.ok(secrets.length > 20, 'the suite collected what to look for');
      for (const secret of secrets) assert.ok(!dump.includes(secret), `${secret} is not in the store`);
      assert.deepEqual(await fixture.keysWithoutTtl(), []);
      await store.close();
      await fixture.teardown();
    });

    describe('csrf', () => {
      it('refuses a cross-site request even with a valid token (layer 1 decides first)', async () => {
        const audit: CsrfAuditEvent[] = [];
        const guard = csrf({ audit: (event) => audit.push(event) });
        const { session } = await newSession();
        const token = await guard.issue(session);
        secrets.push(token);
        const post = { method: 'POST' };
        assert.deepEqual(await guard.verify(session, token, { ...post, secFetchSite: 'same-origin' }), {
          ok: true,
        });
        assert.deepEqual(await guard.verify(session, token, { ...post, secFetchSite: 'cross-site' }), {
          ok: false,
          reason: 'cross-site',
        });
        assert.deepEqual(await guard.verify(session, token, { ...post, secFetchSite: 'same-site' }), {
          ok: false,
          reason: 'same-site',
        });
        assert.deepEqual(
          await csrf({ allowSameSite: true }).verify(session, token, { ...post, secFetchSite: 'same-site' }),
          {
            ok: true,
          },
        );
        assert.deepEqual(await guard.verify(session, token, { ...post, secFetchSite: 'none' }), {
          ok: false,
          reason: 'cross-site',
        });
        assert.deepEqual(audit, [
          { type: 'csrf.refused', reason: 'cross-site' },
          { type: 'csrf.refused', reason: 'same-site' },
          { type: 'csrf.refused', reason: 'cross-site' },
        ]);
      });

      it('checks Origin where Fetch Metadata is absent, and refuses neither header (a Referer is not enough)', () => {
        const guard = csrf();
        const post = { method: 'PUT' };
        assert.deepEqual(guard.checkRequest({ ...post, origin: OWN }), { ok: true });
        assert.deepEqual(guard.checkRequest({ ...post, origin: 'https://admin.example.com' }), { ok: true });
        assert.deepEqual(guard.checkRequest({ ...post, origin: 'https://evil.example' }), {
          ok: false,
          reason: 'foreign-origin',
        });
        assert.deepEqual(guard.checkRequest({ ...post, origin: 'https://forms.example.com.evil.example' }), {
          ok: false,
          reason: 'foreign-origin',
        });
        assert.deepEqual(guard.checkRequest({ ...post, origin: 'null' }), {
          ok: false,
          reason: 'null-origin',
        });
        const withReferer = { ...post, referer: `${OWN}/forms/1` } as { method: string };
        assert.deepEqual(guard.checkRequest(withReferer), { ok: false, reason: 'missing-origin' });
        assert.deepEqual(guard.checkRequest(post), { ok: false, reason: 'missing-origin' });
        assert.deepEqual(guard.checkRequest({ method: 'GET' }), { ok: true, exempt: 'safe-method' });
        assert.deepEqual(guard.checkRequest({ ...post, authorization: 'Bearer abc' }), {
          ok: true,
          exempt: 'bearer',
        });
        assert.throws(() => csrf({ trustedOrigins: ['https://x.example/path'] }), TypeError);
      });

      it('with sameHostOrigin, accepts an Origin naming the request Host, and nothing more', () => {
        const strict = csrf();
        const post = { method: 'POST', host: 'app.internal:8443' };
        assert.deepEqual(strict.checkRequest({ ...post, origin: 'https://app.internal:8443' }), {
          ok: false,
          reason: 'foreign-origin',
        });
        const guard = csrf({ sameHostOrigin: true });
        assert.deepEqual(guard.checkRequest({ ...post, origin: 'https://app.internal:8443' }), { ok: true });
        assert.deepEqual(
          guard.checkRequest({ method: 'POST', host: 'App.Internal:443', origin: 'https://app.internal' }),
          {
            ok: true,
          },
        );
        for (const [origin, host] of [
          ['https://evil.example', 'app.internal:8443'],
          ['https://app.internal:9000', 'app.internal:8443'],
          ['http://app.internal:8443', 'app.internal:8443'],
          ['https://app.internal:8443', undefined],
        ] as const) {
          assert.deepEqual(guard.checkRequest({ method: 'POST', host, origin }), {
            ok: false,
            reason: 'foreign-origin',
          });
        }
        const plain = new Csrf(store, keyRing, { ownOrigin: 'http://localhost:3000', sameHostOrigin: true });
        assert.deepEqual(
          plain.checkRequest({ method: 'POST', host: '127.0.0.1:4000', origin: 'http://127.0.0.1:4000' }),
          {
            ok: true,
          },
        );
      });

      it('refuses a token of another session, a malformed or missing one, and a revoked one', async () => {
        const guard = csrf();
        const a = await newSession();
        const b = await newSession();
        const token = await guard.issue(a.session);
        secrets.push(token);
        assert.deepEqual(await guard.verifyToken(a.session, token), { ok: true });
        assert.deepEqual(await guard.verifyToken(b.session, token), { ok: false, reason: 'invalid-token' });
        assert.deepEqual(await guard.verifyToken(a.session, undefined), {
          ok: false,
          reason: 'missing-token',
        });
        assert.deepEqual(await guard.verifyToken(a.session, `${token}x`), {
          ok: false,
          reason: 'malformed-token',
        });
        const tampered = `${token.slice(0, 10)}${token[10] === 'A' ? 'B' : 'A'}${token.slice(11)}`;
        assert.deepEqual(await guard.verifyToken(a.session, tampered), {
          ok: false,
          reason: 'invalid-token',
        });
        await guard.revoke(token);
        assert.deepEqual(await guard.verifyToken(a.session, token), { ok: false, reason: 'revoked-token' });
      });

      it('verifies by the MAC alone while the store is down, and refuses a token after session rotation', async () => {
        const guard = csrf();
        const { sessions, token: sessionToken, session: current } = await newSession();
        const token = await guard.issue(current);
        secrets.push(token);
        const offline = new Csrf(await downStore(), keyRing, { ownOrigin: OWN });
        assert.deepEqual(await offline.verifyToken(current, token), { ok: true }, 'store down: HMAC decides');
        assert.deepEqual(
          await offline.verifyToken(
            current,
            token.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')),
          ),
          {
            ok: false,
            reason: 'invalid-token',
          },
        );
        const rotated = await sessions.rotate(sessionToken);
        assert.ok(rotated);
        secrets.push(rotated.token);
        assert.deepEqual(await guard.verifyToken(rotated.session, token), {
          ok: false,
          reason: 'invalid-token',
        });
        assert.deepEqual(await offline.verifyToken(rotated.session, token), {
          ok: false,
          reason: 'invalid-token',
        });
      });

      it('refuses a token past its lifetime', async () => {
        const guard = csrf({ ttl: '200ms' });
        const { session: current } = await newSession();
        const token = await guard.issue(current);
        secrets.push(token);
        assert.deepEqual(await guard.verifyToken(current, token), { ok: true });
        await sleep(250);
        assert.deepEqual(await guard.verifyToken(current, token), { ok: false, reason: 'expired-token' });
      });
    });

    describe('nonces', () => {
      it('consumes a nonce once, for its own purpose only', async () => {
        const nonces = new Nonces(store, keyRing);
        const { nonce } = await nonces.issue('form:1');
        secrets.push(nonce);
        assert.deepEqual(await nonces.consume('form:2', nonce), { ok: false, reason: 'invalid' });
        assert.deepEqual(await nonces.consume('form:1', nonce), { ok: true });
        assert.deepEqual(await nonces.consume('form:1', nonce), { ok: false, reason: 'used' });
        assert.deepEqual(await nonces.consume('form:1', 'nope'), { ok: false, reason: 'malformed' });
        assert.deepEqual(await nonces.consume('form:1', 42), { ok: false, reason: 'malformed' });
        const forged = `${nonce.slice(0, 20)}${nonce[20] === 'A' ? 'B' : 'A'}${nonce.slice(21)}`;
        assert.deepEqual(await nonces.consume('form:1', forged), { ok: false, reason: 'invalid' });
        await assert.rejects(nonces.issue(''), TypeError);
      });

      it('gives exactly one success to 50 concurrent consumes', async () => {
        const nonces = new Nonces(store, keyRing);
        const { nonce } = await nonces.issue('invite');
        secrets.push(nonce);
        const results = await Promise.all(Array.from({ length: 50 }, () => nonces.consume('invite', nonce)));
        assert.equal(results.filter((result) => result.ok).length, 1);
        assert.equal(results.filter((result) => !result.ok && result.reason === 'used').length, 49);
      });

      it('refuses an expired nonce, and fails closed while the store is down', async () => {
        const nonces = new Nonces(store, keyRing);
        const { nonce } = await nonces.issue('form:exp', { ttl: '150ms' });
        secrets.push(nonce);
        await sleep(200);
        assert.deepEqual(await nonces.consume('form:exp', nonce), { ok: false, reason: 'expired' });
        const fresh = await nonces.issue('form:down');
        secrets.push(fresh.nonce);
        const offline = new Nonces(await downStore(), keyRing);
        await assert.rejects(offline.consume('form:down', fresh.nonce), StoreUnavailableError);
        await assert.rejects(offline.issue('form:down'), StoreUnavailableError);
        assert.deepEqual(await nonces.consume('form:down', fresh.nonce), { ok: true }, 'still unspent');
      });
    });

    describe('idempotency keys', () => {
      it('runs the first request, replays its response for the same body, refuses another body', async () => {
        const idem = new Idempotency(store, keyRing);
        const key = randomUUID();
        const scope = `user:${randomUUID()}:POST /forms`;
        const body = JSON.stringify({ answers: { name: 'Jane Roe', dob: '1970-01-01' } });
        secrets.push(key, 'Jane Roe', '1970-01-01');
        assert.deepEqual(await idem.begin(scope, key, body), { state: 'started' });
        assert.deepEqual(
          await idem.begin(scope, key, body),
          { state: 'in-progress' },
          'repeat while running',
        );
        assert.deepEqual(await idem.begin(scope, key, '{"other":1}'), { state: 'mismatch' });
        const response = {
          status: 201,
          headers: { 'content-type': 'application/json' },
          body: Buffer.from(body),
        };
        assert.equal(await idem.complete(scope, key, body, response), true);
        assert.deepEqual(await idem.begin(scope, key, body), { state: 'replay', response });
        assert.deepEqual(await idem.begin(scope, key, '{"other":1}'), { state: 'mismatch' });
        assert.deepEqual(await idem.begin(`${scope}x`, key, body), { state: 'started' }, 'keys are scoped');
      });

      it('lets a retry run again after the first request abandoned, or its claim expired', async () => {
        const idem = new Idempotency(store, keyRing, { inFlightTtl: '150ms' });
        const key = randomUUID();
        secrets.push(key);
        assert.deepEqual(await idem.begin('s', key, 'body'), { state: 'started' });
        assert.equal(await idem.abandon('s', key, 'other body'), false, 'only the claiming body releases');
        assert.equal(await idem.abandon('s', key, 'body'), true);
        assert.deepEqual(await idem.begin('s', key, 'body'), { state: 'started' });
        await sleep(200);
        assert.equal(
          await idem.complete('s', key, 'body', { status: 200, headers: {}, body: Buffer.alloc(0) }),
          false,
        );
        assert.deepEqual(await idem.begin('s', key, 'body'), { state: 'started' });
      });

      it('lets exactly one of 20 concurrent requests with one key run', async () => {
        const idem = new Idempotency(store, keyRing);
        const key = randomUUID();
        secrets.push(key);
        const outcomes = await Promise.all(Array.from({ length: 20 }, () => idem.begin('s', key, 'same')));
        assert.equal(outcomes.filter((outcome) => outcome.state === 'started').length, 1);
        assert.equal(outcomes.filter((outcome) => outcome.state === 'in-progress').length, 19);
      });
    });

    describe('revocation list', () => {
      it('revokes a token until it expires, and every token of a user issued before a time', async () => {
        const revocations = new Revocations(store, keyRing);
        const jti = randomUUID();
        const other = randomUUID();
        const userId = randomUUID();
        secrets.push(jti, other, userId);
        await revocations.revoke(jti, Date.now() + 60_000);
        assert.equal(await revocations.isRevoked(jti), true);
        assert.equal(await revocations.isRevoked(other), false);
        await revocations.revoke(other, Date.now() - 1000);
        assert.equal(await revocations.isRevoked(other), false, 'an expired token needs no entry');

        const revokedAt = Date.now();
        await revocations.revokeUser(userId, revokedAt);
        assert.equal(await revocations.isRevokedForUser(userId, revokedAt - 1), true);
        assert.equal(await revocations.isRevokedForUser(userId, revokedAt + 1), false);
        await revocations.revokeUser(userId, revokedAt - 60_000);
        assert.equal(await revocations.isRevokedForUser(userId, revokedAt - 1), true, 'never moves back');
        assert.equal(await revocations.check({ tokenId: other, userId, issuedAtMs: revokedAt - 5 }), true);
        assert.equal(await revocations.check({ tokenId: other, userId, issuedAtMs: revokedAt + 5 }), false);
        const offline = new Revocations(await downStore(), keyRing);
        await assert.rejects(offline.isRevoked(jti), StoreUnavailableError, 'fails closed');
      });

      it('lets an entry expire with the token', async () => {
        const revocations = new Revocations(store, keyRing);
        const jti = randomUUID();
        secrets.push(jti);
        await revocations.revoke(jti, Date.now() + 150);
        assert.equal(await revocations.isRevoked(jti), true);
        await sleep(200);
        assert.equal(await revocations.isRevoked(jti), false);
      });
    });
  });
}
