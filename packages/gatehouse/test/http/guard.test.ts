/**
 * The framework-neutral HTTP pieces on their own: client IP behind trusted proxies (a number of
 * them, or a list), the address groups of per-IP limits, guard options, the account methods,
 * cookie reading and writing, error mapping.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { KeyRing } from '../../src/crypto/keyring.js';
import { StoreUnavailableError } from '../../src/errors.js';
import { HttpGuard, type HttpRequestView } from '../../src/http/guard.js';
import { RateLimits } from '../../src/rate-limit/rate-limits.js';
import { Sessions } from '../../src/sessions/sessions.js';
import { MemoryStore } from '../../src/store/memory/store.js';
import { clientIp, parseTrustedProxies, resolveTrustProxy } from '../../src/http/client-ip.js';
import { ipRateLimitGroup } from '../../src/http/ip-address.js';
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

describe('client IP behind a list of trusted proxies', () => {
  const listed = resolveTrustProxy(['10.0.0.0/8', '127.0.0.1', 'fd00::/8']);

  it('believes X-Forwarded-For only from a listed peer', () => {
    assert.equal(clientIp('203.0.113.5', '198.51.100.1', listed), '203.0.113.5', 'unlisted peer: itself');
    assert.equal(clientIp('10.2.3.4', '198.51.100.1', listed), '198.51.100.1');
    assert.equal(clientIp('::ffff:10.2.3.4', '198.51.100.1', listed), '198.51.100.1', 'IPv4-mapped peer');
    assert.equal(clientIp('fd12::1', '2001:db8::9', listed), '2001:db8::9');
    assert.equal(clientIp('127.0.0.1', undefined, listed), '127.0.0.1', 'no header: the peer');
  });

  it('takes the rightmost entry that is not listed, the leftmost when all are', () => {
    assert.equal(clientIp('10.0.0.1', 'forged, 198.51.100.1, 10.9.9.9, 127.0.0.1', listed), '198.51.100.1');
    assert.equal(clientIp('10.0.0.1', '10.0.0.7, 10.0.0.8', listed), '10.0.0.7');
    assert.equal(clientIp('10.0.0.1', '198.51.100.1:4711, , 10.0.0.2', listed), '198.51.100.1');
    assert.equal(clientIp('10.0.0.1', '[2001:db8::7]:443', listed), '2001:db8::7');
    assert.equal(
      clientIp('10.0.0.1', '198.51.100.1, not-an-ip, 10.0.0.2', listed),
      '10.0.0.2',
      'garbage stops the walk at the last address a listed proxy stood for',
    );
  });

  it('reads proxy lists and names the first bad entry', () => {
    const parsed = parseTrustedProxies([' 10.0.0.0/8 ', '127.0.0.1', 'fd00::/8', '::1', '0.0.0.0/0']);
    assert.ok(parsed.ok);
    assert.deepEqual(parsed.proxies.entries, ['10.0.0.0/8', '127.0.0.1', 'fd00::/8', '::1', '0.0.0.0/0']);
    assert.equal(parsed.proxies.has('10.200.0.1'), true);
    assert.equal(parsed.proxies.has('11.0.0.1'), true, '0.0.0.0/0 lists every IPv4 address');
    assert.equal(parsed.proxies.has('2001:db8::1'), false);
    assert.equal(parsed.proxies.has('unknown'), false);
    for (const bad of [
      '10.0.0.0/33',
      'fd00::/129',
      'proxy.internal',
      '',
      '10.0.0.1/',
      '[::1]',
      '10.0.0.0/8/8',
      '1.2.3',
    ]) {
      assert.deepEqual(parseTrustedProxies(['127.0.0.1', bad, 'nope']), { ok: false, badEntry: bad }, bad);
    }
    assert.throws(
      () => resolveTrustProxy(['10.0.0.0/8', '10.0.0.0/80']),
      /trustProxy: "10\.0\.0\.0\/80" is not/,
    );
    assert.deepEqual(parseTrustedProxies([]).ok, true);
  });

  it('keeps the number form, from 0 to 99 proxies', () => {
    assert.equal(resolveTrustProxy(undefined), 0);
    assert.equal(resolveTrustProxy(true), 1);
    assert.equal(resolveTrustProxy(false), 0);
    assert.equal(resolveTrustProxy(99), 99);
    for (const bad of [100, -1, 1.5, Number.NaN, '2' as unknown as number]) {
      assert.throws(() => resolveTrustProxy(bad), TypeError, String(bad));
    }
  });
});

describe('IP address groups of the per-IP limits', () => {
  it('counts IPv6 by its /64 in canonical form, and IPv4 (mapped too) per address', () => {
    const cases: [string, string][] = [
      ['2001:db8:1:2::7', '2001:db8:1:2::/64'],
      ['2001:0DB8:0001:0002:ffff:0:0:1', '2001:db8:1:2::/64'],
      ['2001:db8:1:2:3:4:198.51.100.1', '2001:db8:1:2::/64'],
      ['2001:db8::1', '2001:db8::/64'],
      ['2001:0:0:1::5', '2001:0:0:1::/64'],
      ['2001:db8:0:0:1::', '2001:db8::/64'],
      ['::1', '::/64'],
      ['fe80::1%eth0', 'fe80::/64'],
      ['::ffff:198.51.100.7', '198.51.100.7'],
      ['::ffff:c633:6407', '198.51.100.7'],
      ['64:ff9b::198.51.100.7', '198.51.100.7'],
      ['198.51.100.7', '198.51.100.7'],
      ['unknown', 'unknown'],
    ];
    for (const [address, group] of cases) assert.equal(ipRateLimitGroup(address), group, address);
  });
});

describe('HttpGuard options', () => {
  it('refuses a malformed trusted proxy, naming it, and an anonymous policy that is not configured', () => {
    const store = new MemoryStore();
    const keyRing = KeyRing.random();
    const sessions = new Sessions(store, keyRing);
    const rateLimits = new RateLimits(store, keyRing, { policies: { api: '100/1m', anonymous: '60/1m+30' } });
    assert.throws(
      () => new HttpGuard({ sessions, trustProxy: ['10.0.0.0/8', '10.0.0.300'] }),
      /"10\.0\.0\.300"/,
    );
    assert.throws(() => new HttpGuard({ sessions, trustProxy: 100 }), TypeError);
    assert.ok(new HttpGuard({ sessions, trustProxy: 99 }));
    assert.throws(
      () => new HttpGuard({ sessions, rateLimits, anonymousPolicy: 'anon' }),
      /anonymousPolicy names the policy "anon", which is not configured \(configured: api, anonymous\)/,
    );
    assert.throws(() => new HttpGuard({ sessions, anonymousPolicy: 'anonymous' }), /needs a RateLimits/);
    assert.ok(new HttpGuard({ sessions, rateLimits, anonymousPolicy: 'anonymous' }));
  });

  it('charges no account for a peek, refuses once the failures are spent, and wants an account key', async () => {
    const store = new MemoryStore();
    const keyRing = KeyRing.random();
    const guard = new HttpGuard({
      sessions: new Sessions(store, keyRing),
      rateLimits: new RateLimits(store, keyRing, { policies: { account: '2/15m' } }),
    });
    for (let i = 0; i < 5; i++)
      assert.equal((await guard.peekAccountLimit('account', 'a@example.com')).refusal, null);
    assert.equal((await guard.chargeAccountFailure('account', 'a@example.com')).refusal, null);
    assert.equal((await guard.chargeAccountFailure('account', 'a@example.com')).refusal, null);
    const peeked = await guard.peekAccountLimit('account', 'a@example.com');
    assert.equal(peeked.refusal?.status, 429);
    assert.equal(peeked.refusal.body.error.code, 'RATE_LIMITED');
    assert.ok(Number(peeked.refusal.headers['Retry-After']) > 400);
    assert.equal(peeked.refusal.headers['X-RateLimit-Limit'], '2');
    assert.equal((await guard.chargeAccountFailure('account', 'a@example.com')).refusal?.status, 429);
    assert.equal((await guard.peekAccountLimit('account', 'b@example.com')).refusal, null, 'another account');
    await assert.rejects(guard.peekAccountLimit('account', ''), TypeError);
    await store.close();
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
