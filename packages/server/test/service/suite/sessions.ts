/**
 * The suite's cases of a user's sessions: listing and ending them, the per-user limit, rotation
 * at sign-in, and the sign-in rate limit with its headers.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';

import { Client, freshEmail } from '../../helpers/client.js';
import { PASSWORD, type SuiteContext } from './context.js';

export function sessionCases(suite: SuiteContext): void {
  it('lists sessions and ends one or all others', async () => {
    const email = freshEmail();
    const first = new Client(suite.base);
    await first.signUp(email);
    await first.signIn(email);
    const second = new Client(suite.base);
    await second.signIn(email);
    const third = new Client(suite.base);
    await third.signIn(email);
    suite.remember(first.sessionToken, second.sessionToken, third.sessionToken);
    const listed = await first.get('/api/v1/sessions');
    assert.equal(listed.status, 200);
    assert.equal(listed.json.data.count, 3);
    const ids = listed.json.data.sessions.map((session: { id: string }) => session.id);
    assert.deepEqual(new Set(ids), new Set([first.sessionId, second.sessionId, third.sessionId]));
    for (const session of listed.json.data.sessions) {
      assert.equal(session.current, session.id === first.sessionId);
      for (const field of [
        'createdAt',
        'lastSeenAt',
        'expiresAt',
        'idleExpiresAt',
        'ipAddress',
        'userAgent',
        'requestCount',
      ]) {
        assert.ok(field in session, field);
      }
      assert.ok(!JSON.stringify(session).includes(String(first.sessionToken)));
    }
    const stranger = await suite.member();
    const notMine = await stranger.request('DELETE', `/api/v1/sessions/${String(second.sessionId)}`);
    assert.equal(notMine.status, 404);
    assert.equal(notMine.json.error.code, 'NOT_FOUND');
    const ended = await first.request('DELETE', `/api/v1/sessions/${String(second.sessionId)}`);
    assert.equal(ended.status, 204);
    assert.equal((await second.get('/api/v1/me')).status, 401);
    const others = await first.request('DELETE', '/api/v1/sessions');
    assert.equal(others.status, 200);
    assert.deepEqual(others.json.data, { terminated: 1 });
    assert.equal((await third.get('/api/v1/me')).status, 401);
    assert.equal((await first.get('/api/v1/me')).status, 200);
    const own = await first.request('DELETE', `/api/v1/sessions/${String(first.sessionId)}`);
    assert.equal(own.status, 204);
    assert.match(own.headers.get('set-cookie') ?? '', /Max-Age=0|Expires=Thu, 01 Jan 1970/);
    assert.equal((await first.get('/api/v1/me', { as: 'session-bearer' })).status, 401);
  });

  it('ends the oldest session at the sixth sign-in, and says so', async () => {
    const email = freshEmail();
    const clients: Client[] = [];
    const first = new Client(suite.base);
    await first.signUp(email);
    for (let i = 0; i < 6; i++) {
      // Spread over addresses: the auth limit allows 7 at once per client IP.
      const client = i === 0 ? first : new Client(suite.base);
      await client.signIn(email);
      clients.push(client);
    }
    const oldest = await first.get('/api/v1/me');
    assert.equal(oldest.status, 401);
    assert.equal(oldest.json.error.code, 'UNAUTHENTICATED');
    assert.match(oldest.json.error.message, /limit/i);
    for (const client of clients.slice(1)) assert.equal((await client.get('/api/v1/me')).status, 200);
  });

  it('rotates a session the request already carries at sign-in', async () => {
    const client = await suite.member();
    const before = client.sessionToken;
    await client.signIn(String(client.user?.email));
    assert.notEqual(client.sessionToken, before);
    const stale = new Client(suite.base);
    stale.sessionToken = before;
    assert.equal((await stale.get('/api/v1/me', { as: 'session-bearer' })).status, 401);
  });

  it('rate-limits sign-in per client IP with the headers of the HTTP contract', async () => {
    const client = new Client(suite.base);
    const email = freshEmail();
    const answers = [];
    for (let i = 0; i < 8; i++)
      answers.push(await client.post('/api/v1/auth/signin', { email, password: PASSWORD }));
    for (const answer of answers.slice(0, 7)) {
      assert.equal(answer.status, 401);
      assert.equal(answer.headers.get('x-ratelimit-limit'), '7');
      assert.ok(answer.headers.get('ratelimit-policy'));
      assert.ok(answer.headers.get('ratelimit'));
    }
    assert.equal(answers[6]?.headers.get('x-ratelimit-remaining'), '0');
    const limited = answers[7];
    assert.equal(limited?.status, 429);
    assert.equal(limited.json.error.code, 'RATE_LIMITED');
    const retryAfter = Number(limited.headers.get('retry-after'));
    assert.ok(retryAfter >= 1 && retryAfter <= 12, String(retryAfter));
    assert.ok(Number(limited.headers.get('x-ratelimit-reset')) > 0);
    // Another address has its own allowance.
    assert.equal(
      (await new Client(suite.base).post('/api/v1/auth/signin', { email, password: PASSWORD })).status,
      401,
    );
    const api = await suite.member();
    const me = await api.get('/api/v1/me');
    assert.equal(me.headers.get('x-ratelimit-limit'), '110');
  });
}
