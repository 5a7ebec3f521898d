/**
 * The framework-neutral HTTP pieces on their own: client IP behind trusted proxies, cookie
 * reading and writing, error mapping.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { KeyRing } from '../../src/crypto/keyring.js';
import { StoreUnavailableError } from '../../src/errors.js';
import { HttpGuard, type HttpRequestView } from '../../src/http/guard.js';
import { RateLimits } from '../../src/rate-limit/rate-limits.js';
import { Sessions } from '../../src/sessions/sessions.js';
import { MemoryStore } from '../../src/store/memory/store.js';
import { clientIp } from '../../src/http/client-ip.js';
import { clearedSessionCookie, readCookie, sessionCookie } from '../../src/http/cookies.js';
import { refusalForError } from '../../src/http/envelope.js';

describe('client IP', () => {
  it('is the socket peer unless proxies are trusted; X-Forwarded-For is the client’s to forge', () => {
    assert.equal(clientIp('203.0.113.5', '198.51.100.1', 0), '203.0.113.5');
    assert.equal(clientIp('::ffff:203.0.113.5', undefined, 0), '203.0.113.5');
  });

  it('with N trusted proxies, is the address N hops back, never a leftmost entry beyond them', () => {
    assert.equal(clientIp('10.0.0.1', '198.51.100.1', 1), '198.51.100.1');
    assert.equal(clientIp('10.0.0.1', 'forged, 198.51.100.1', 1), '198.51.100.1');
    assert.equal(clientIp('10.0.0.2', 'forged, 198.51.100.1, 10.0.0.1', 2), '198.51.100.1');
    assert.equal(clientIp('10.0.0.2', '198.51.100.1', 3), '198.51.100.1', 'fewer entries: the leftmost');
    assert.equal(clientIp('10.0.0.1', 'not-an-ip', 1), '10.0.0.1', 'garbage falls back to the peer');
    assert.equal(clientIp('10.0.0.1', '198.51.100.1:51234', 1), '198.51.100.1', 'a port is not the address');
    assert.equal(clientIp('10.0.0.1', '[2001:db8::7]:443', 1), '2001:db8::7');
    assert.equal(clientIp('10.0.0.1', '2001:db8::7', 1), '2001:db8::7');
  });
});

describe('session cookie', () => {
  it('is __Host- with Secure when secure, plain gh_session otherwise', () => {
    const secure = sessionCookie('tok', Date.now() + 60_000, true);
    assert.match(secure, /^__Host-gh_session=tok; Path=\/; HttpOnly; SameSite=Lax; Max-Age=(59|60); Secure$/);
    assert.match(sessionCookie('tok', Date.now() + 60_000, false), /^gh_session=tok; .*Max-Age=(59|60)$/);
    assert.match(
      clearedSessionCookie(true),
      /^__Host-gh_session=; Path=\/; HttpOnly; SameSite=Lax; Max-Age=0; Secure$/,
    );
  });

  it('reads the first cookie of a name and nothing from oversized headers', () => {
    assert.equal(readCookie('a=1; __Host-gh_session=xyz; b=2', '__Host-gh_session'), 'xyz');
    assert.equal(readCookie('gh_session=one; gh_session=two', 'gh_session'), 'one');
    assert.equal(readCookie('other=1', 'gh_session'), undefined);
    assert.equal(readCookie(undefined, 'gh_session'), undefined);
    assert.equal(readCookie(`gh_session=${'x'.repeat(20_000)}`, 'gh_session'), undefined);
  });
});

describe('error mapping', () => {
  it('answers store outages with 503 and Retry-After, anything else with a 500 that says nothing', () => {
    const outage = refusalForError(new StoreUnavailableError('down'));
    assert.equal(outage.status, 503);
    assert.equal(outage.headers['Retry-After'], '1');
    assert.equal(outage.body.error.code, 'SERVICE_UNAVAILABLE');
    const bug = refusalForError(new Error('secret detail'));
    assert.equal(bug.status, 500);
    assert.doesNotMatch(JSON.stringify(bug.body), /secret detail/);
  });
});

describe('HttpGuard rate-limit subjects', () => {
  it('charges per client IP when asked, whatever session the request presents', async () => {
    const store = new MemoryStore();
    const keyRing = KeyRing.random();
    const sessions = new Sessions(store, keyRing);
    const guard = new HttpGuard({
      sessions,
      rateLimits: new RateLimits(store, keyRing, { policies: { auth: '2/1m' } }),
    });
    const request: HttpRequestView = { method: 'POST', header: () => undefined, socketAddress: '192.0.2.9' };
    const remaining: number[] = [];
    for (const userId of ['a', 'b', 'c']) {
      const { session } = await sessions.create({ userId });
      const auth = { session, via: 'bearer' as const, endReason: null, presented: true };
      const result = await guard.rateLimit(request, auth, { auth: 'ip' });
      remaining.push(result.refusal ? -1 : Number(result.headers['X-RateLimit-Remaining']));
    }
    assert.deepEqual(remaining, [1, 0, -1], 'three users, one address: the third is refused');
    const anonymous = { session: null, via: null, endReason: null, presented: false };
    await assert.rejects(guard.rateLimit(request, anonymous, { auth: 'everyone' } as never), TypeError);
    await sessions.close();
    await store.close();
  });
});
