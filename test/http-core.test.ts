/**
 * The framework-neutral HTTP pieces on their own: client IP behind trusted proxies, cookie
 * reading and writing, error mapping.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { StoreUnavailableError } from '../src/errors.js';
import { clientIp } from '../src/http/client-ip.js';
import { clearedSessionCookie, readCookie, sessionCookie } from '../src/http/cookies.js';
import { refusalForError } from '../src/http/envelope.js';

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
