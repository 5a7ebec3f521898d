/**
 * Limits per client over real HTTP, for Fastify 5, Express 5 and Express 4 on a real Redis: the
 * pre-authentication limit (`anonymousPolicy`) turns a flood of invalid credentials into 429s
 * that cost no credential check at all, counted; per-IP limits count an IPv6 client by its /64;
 * a trusted-proxy list believes `X-Forwarded-For` only from listed peers; and the account
 * methods refuse a sign-in once the account's allowance of failures is spent, for an account
 * never seen before too, without a peek ever charging anything.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';

import { KeyRing } from '../../src/crypto/keyring.js';
import type { HttpGuardOptions } from '../../src/http/guard.js';
import { RateLimits } from '../../src/rate-limit/rate-limits.js';
import { Sessions, type SessionValidationResult } from '../../src/sessions/sessions.js';
import { RedisStore } from '../../src/store/redis/store.js';
import { startStandalone, uniquePrefix, type Standalone } from '../harness/topologies.js';
import { LIMITS_APPS, RIGHT_PASSWORD, type LimitsApp } from './client-limits-apps.js';

/** The anonymous policy's allowance: 5 per minute + 2 at once. */
const ANONYMOUS_AT_ONCE = 7;

/** A bearer that is neither kind of credential nor well-formed, a forged access token, or a session-shaped one. */
function randomBearer(i: number): string {
  const kind = i % 3;
  if (kind === 0) return `at.${randomBytes(24).toString('base64url')}`;
  if (kind === 1) return randomBytes(45).toString('base64url').slice(0, 59);
  return randomBytes(5).toString('hex');
}

let redis: Standalone;

before(async () => {
  redis = await startStandalone();
});

after(async () => {
  await redis.destroy();
});

for (const [framework, build] of LIMITS_APPS) {
  describe(`per-client limits: ${framework}, standalone Redis`, { timeout: 60_000 }, () => {
    let store: RedisStore;
    let sessions: Sessions;
    let app: LimitsApp;
    /** The app behind a proxy list that does not include the test's own address. */
    let unlisted: LimitsApp;
    let bearerChecks = 0;
    let sessionValidations = 0;
    let ipCounter = 0;

    before(async () => {
      store = new RedisStore({ connection: redis.connection, keyPrefix: uniquePrefix() });
      await store.waitUntilReady(5000);
      const keyRing = KeyRing.random();
      sessions = new Sessions(store, keyRing);
      // Every session validation the guard asks for, counted.
      const validate = sessions.validateWithReason.bind(sessions);
      sessions.validateWithReason = (token: unknown): Promise<SessionValidationResult> => {
        sessionValidations++;
        return validate(token);
      };
      const options: HttpGuardOptions = {
        sessions,
        rateLimits: new RateLimits(store, keyRing, {
          policies: { anonymous: '5/1m+2', auth: '3/1m', account: '3/15m', api: '1000/1m' },
        }),
        anonymousPolicy: 'anonymous',
        secureCookies: false,
        // The tests connect from 127.0.0.1: a listed proxy, so their X-Forwarded-For is believed.
        trustProxy: ['127.0.0.1', '10.0.0.0/8', 'fd00::/8'],
        // Stands for an access-token check (a signature): bearers starting `at.` are such tokens,
        // all forged here.
        authenticateBearer: (token) => {
          bearerChecks++;
          return Promise.resolve(token.startsWith('at.') ? { session: null, reason: null } : undefined);
        },
      };
      app = await build(options);
      unlisted = await build({ ...options, trustProxy: ['10.0.0.0/8'] });
    });

    after(async () => {
      await app.close();
      await unlisted.close();
      await sessions.close();
      await store.close();
    });

    /** An IPv4 address of the test's own, never used by another case. */
    function freshIp(): string {
      ipCounter++;
      return `198.51.${String(100 + Math.floor(ipCounter / 250))}.${String((ipCounter % 250) + 1)}`;
    }

    async function get(
      path: string,
      clientIp: string,
      headers: Record<string, string> = {},
      on: LimitsApp = app,
    ): Promise<{ status: number; code: string | null; headers: Headers; body: unknown }> {
      const response = await fetch(`${on.url}${path}`, {
        headers: { 'x-forwarded-for': clientIp, ...headers },
      });
      const body: unknown = await response.json();
      const code = (body as { error?: { code?: string } }).error?.code ?? null;
      return { status: response.status, code, headers: response.headers, body };
    }

    async function signIn(account: string, password: string, clientIp: string) {
      const response = await fetch(`${app.url}/signin`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': clientIp },
        body: JSON.stringify({ account, password }),
      });
      const body = (await response.json()) as { error?: { code?: string } };
      return { status: response.status, code: body.error?.code ?? null, headers: response.headers };
    }

    it('answers a flood of random bearers 401 up to the anonymous limit, then 429 without looking at one', async () => {
      const ip = freshIp();
      for (let i = 0; i < ANONYMOUS_AT_ONCE; i++) {
        const answer = await get('/me', ip, { authorization: `Bearer ${randomBearer(i)}` });
        assert.equal(answer.status, 401, `bearer ${String(i + 1)}`);
        assert.equal(answer.code, 'UNAUTHENTICATED');
        assert.equal(answer.headers.get('x-ratelimit-limit'), String(ANONYMOUS_AT_ONCE));
      }
      const first = await get('/me', ip, { authorization: `Bearer ${randomBearer(1)}` });
      assert.equal(first.status, 429);
      assert.equal(first.code, 'RATE_LIMITED');
      assert.ok(Number(first.headers.get('retry-after')) >= 1);
      assert.equal(first.headers.get('x-ratelimit-remaining'), '0');
      assert.match(first.headers.get('ratelimit-policy') ?? '', /^"anonymous";q=7;w=60$/);

      const checked = { bearers: bearerChecks, validations: sessionValidations };
      const statuses = new Set<number>();
      for (let i = 0; i < 30; i++) {
        const path = i % 2 === 0 ? '/me' : '/admin';
        statuses.add((await get(path, ip, { authorization: `Bearer ${randomBearer(i)}` })).status);
      }
      statuses.add((await get('/me', ip)).status); // no credential at all
      statuses.add((await get('/me', ip, { cookie: `gh_session=${randomBearer(1)}` })).status);
      assert.deepEqual([...statuses], [429]);
      assert.deepEqual(
        { bearers: bearerChecks, validations: sessionValidations },
        checked,
        'after the first 429, no bearer check and no session validation for this IP',
      );

      // Another address is not affected.
      const other = await get('/me', freshIp(), { authorization: `Bearer ${randomBearer(1)}` });
      assert.equal(other.status, 401);
    });

    it('lets a session this instance knows through from a refused IP, and leaves optional routes alone', async () => {
      const ip = freshIp();
      for (let i = 0; i <= ANONYMOUS_AT_ONCE; i++) await get('/me', ip);
      assert.equal((await get('/me', ip)).status, 429, 'the IP is refused');

      const known = await sessions.create({ userId: `known-${randomBytes(4).toString('hex')}` });
      assert.equal((await get('/me', freshIp(), { authorization: `Bearer ${known.token}` })).status, 200);
      const fromRefused = await get('/me', ip, { authorization: `Bearer ${known.token}` });
      assert.equal(fromRefused.status, 200, 'a session this instance validated before is not held up');

      const unseen = await sessions.create({ userId: `unseen-${randomBytes(4).toString('hex')}` });
      const optional = await get('/maybe', ip, { authorization: `Bearer ${unseen.token}` });
      assert.equal(optional.status, 200);
      assert.deepEqual(optional.body, { userId: unseen.session.userId }, 'an optional route still validates');
      const anonymousOptional = await get('/maybe', ip);
      assert.deepEqual([anonymousOptional.status, anonymousOptional.body], [200, { userId: null }]);
    });

    it('counts an IPv6 client by its /64: one /64 shares one allowance, another /64 has its own', async () => {
      // Per-IP route limit (auth: 3 per minute), written in different forms of one /64.
      const sameNetwork = ['2001:db8:a:1::1', '2001:db8:a:1:ffff::2', '2001:0db8:000a:0001:0:0:0:3'];
      const remaining = [];
      for (const [i, address] of sameNetwork.entries()) {
        const answer = await signIn(
          `v6-${String(i)}-${randomBytes(4).toString('hex')}`,
          RIGHT_PASSWORD,
          address,
        );
        assert.equal(answer.status, 200);
        remaining.push(answer.headers.get('x-ratelimit-remaining'));
      }
      assert.equal(remaining[2], '0', `remaining after each: ${remaining.join(', ')}`);
      const spent = await signIn(
        `v6-x-${randomBytes(4).toString('hex')}`,
        RIGHT_PASSWORD,
        '[2001:db8:a:1:1234::9]:443',
      );
      assert.equal(spent.status, 429, 'a fourth address of the same /64 is refused');
      assert.equal(spent.code, 'RATE_LIMITED');
      const next = await signIn(`v6-y-${randomBytes(4).toString('hex')}`, RIGHT_PASSWORD, '2001:db8:a:2::1');
      assert.equal(next.status, 200, 'the next /64 has its own allowance');

      // The anonymous limit too: a new address of one /64 for every invalid bearer.
      for (let i = 0; i < ANONYMOUS_AT_ONCE; i++) {
        const answer = await get('/me', `2001:db8:b:1::${(i + 1).toString(16)}`, {
          authorization: `Bearer ${randomBearer(i)}`,
        });
        assert.equal(answer.status, 401);
      }
      assert.equal((await get('/me', '2001:db8:b:1:dead:beef:0:1')).status, 429);
      assert.equal((await get('/me', '2001:db8:b:2::1')).status, 401, 'another /64 is not refused');
      // IPv4 stays per address, IPv4-mapped IPv6 included.
      const v4 = freshIp();
      for (let i = 0; i <= ANONYMOUS_AT_ONCE; i++) await get('/me', v4);
      assert.equal((await get('/me', `::ffff:${v4}`)).status, 429, 'the mapped form is the same address');
      assert.equal((await get('/me', freshIp())).status, 401, 'the next IPv4 address has its own');
    });

    it('believes X-Forwarded-For from listed proxies only, and takes its rightmost unlisted entry', async () => {
      const ipOf = async (forwardedFor: string, on: LimitsApp = app) =>
        ((await get('/ip', forwardedFor, {}, on)).body as { ip: string }).ip;
      assert.equal(await ipOf('203.0.113.7'), '203.0.113.7');
      assert.equal(await ipOf('203.0.113.7, 10.1.2.3'), '203.0.113.7', 'a listed proxy is passed over');
      assert.equal(await ipOf('forged, 198.51.100.99, 203.0.113.7, 10.9.9.9'), '203.0.113.7');
      assert.equal(await ipOf('10.0.0.5, 10.1.1.1'), '10.0.0.5', 'all listed: the leftmost');
      assert.equal(await ipOf('2001:db8::5, fd00::1'), '2001:db8::5');
      assert.equal(
        await ipOf('203.0.113.7', unlisted),
        '127.0.0.1',
        'from an unlisted peer: the peer itself',
      );

      // Seen through the limits: from an unlisted peer, every X-Forwarded-For shares one subject.
      const answers = [];
      for (let i = 0; i < 4; i++) {
        const response = await fetch(`${unlisted.url}/signin`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-forwarded-for': freshIp() },
          body: JSON.stringify({ account: `unlisted-${String(i)}`, password: RIGHT_PASSWORD }),
        });
        await response.arrayBuffer();
        answers.push(response.status);
      }
      assert.deepEqual(answers, [200, 200, 200, 429]);
    });

    it('refuses sign-in once an account’s failures are spent, for an account never seen, a peek charging nothing', async () => {
      const account = `nobody-${randomBytes(4).toString('hex')}@example.com`;
      // Peeks alone, many of them: nothing charged.
      for (let i = 0; i < 10; i++) {
        const response = await fetch(`${app.url}/signin`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-forwarded-for': freshIp() },
          body: JSON.stringify({ account, password: RIGHT_PASSWORD }),
        });
        await response.arrayBuffer();
        assert.equal(response.status, 200);
      }
      // Three failures, each from its own address (past the per-IP limit): all still allowed.
      for (let i = 0; i < 3; i++) {
        const failed = await signIn(account, 'wrong password', freshIp());
        assert.equal(failed.status, 401, `failure ${String(i + 1)}`);
      }
      const right = await signIn(account, RIGHT_PASSWORD, freshIp());
      assert.equal(right.status, 429, 'refused with the right password too, once the failures are spent');
      assert.equal(right.code, 'RATE_LIMITED');
      assert.ok(
        Number(right.headers.get('retry-after')) > 60,
        `Retry-After ${String(right.headers.get('retry-after'))}`,
      );
      assert.equal(right.headers.get('x-ratelimit-limit'), '3');
      const wrong = await signIn(account, 'wrong password', freshIp());
      assert.deepEqual([wrong.status, wrong.code], [429, 'RATE_LIMITED']);
      const another = await signIn(
        `other-${randomBytes(4).toString('hex')}@example.com`,
        RIGHT_PASSWORD,
        freshIp(),
      );
      assert.equal(another.status, 200, 'another account is not affected');
    });
  });
}
