/**
 * The HTTP-level cases every adapter must answer alike, over real HTTP against a small app built
 * with that adapter: session required, roles, cookie attributes, CSRF refusals, 429 with
 * headers, nonce replay, 409 on a lock conflict, sign-out, and 503 while the store is down.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import type { Store } from '../../src/store/store.js';
import { appParts, Gate, OWN_ORIGIN, type AppParts } from './parts.js';

export interface TestApp {
  readonly url: string;
  close(): Promise<void>;
}

export type AppBuilder = (parts: AppParts, gate: Gate) => Promise<TestApp>;

interface Signed {
  readonly token: string;
  readonly csrfToken: string;
  readonly cookie: string;
  readonly setCookie: string;
}

/** No case may hang the run: a wait that never ends fails with the case's name instead. */
const BOUNDED = { timeout: 30_000 };

/** Resolves when a handler is waiting at the gate; rejects if the request was answered first. */
async function inside(reached: Promise<void>, response: Promise<Response | null>): Promise<void> {
  const first = await Promise.race([reached.then(() => null), response.then((answer) => ({ answer }))]);
  if (first !== null) {
    const { answer } = first;
    throw new Error(`the request was answered before its handler ran: ${String(answer?.status)}`);
  }
}

export function conformanceSuite(
  name: string,
  build: AppBuilder,
  storeSetup: () => Promise<{ store: Store; otherStore: () => Store }>,
): void {
  describe(`http conformance: ${name}`, () => {
    let app: TestApp;
    let store: Store;
    let otherStore: () => Store;
    let parts: AppParts;
    const gate = new Gate();
    let ip = 0;

    before(async () => {
      ({ store, otherStore } = await storeSetup());
      await store.waitUntilReady(5000);
      parts = appParts(store);
      app = await build(parts, gate);
    });

    after(async () => {
      await app.close();
      await parts.sessions.close();
      await store.close();
    });

    /** Each sign-in comes from its own client address, so the auth limit is the test's own. */
    async function signIn(userId: string, roles: string[] = []): Promise<Signed> {
      const response = await request('POST', '/signin', { body: { userId, roles } });
      assert.equal(response.status, 200, await response.clone().text());
      const { data } = (await response.json()) as { data: { token: string; csrfToken: string } };
      const setCookie = response.headers.get('set-cookie') ?? '';
      return { ...data, setCookie, cookie: setCookie.split(';')[0] ?? '' };
    }

    function request(
      method: string,
      path: string,
      options: { body?: unknown; headers?: Record<string, string>; signal?: AbortSignal } = {},
    ): Promise<Response> {
      return fetch(`${app.url}${path}`, {
        method,
        headers: {
          ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
          // One proxy is trusted: each request claims its own client address unless it says otherwise.
          'x-forwarded-for': `10.0.${String(Math.floor(ip / 250))}.${String((ip++ % 250) + 1)}`,
          ...options.headers,
        },
        ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      });
    }

    /**
     * Sends a request to a locked route until it gets in (409 while the lock is still held, for
     * at most a second), lets its handler through the gate, and returns its answer.
     */
    async function enterWhenFree(path: string, headers: Record<string, string>): Promise<Response> {
      for (let attempt = 0; ; attempt++) {
        const reached = gate.reached();
        const pending = request('POST', path, { body: {}, headers });
        const got = await Promise.race([
          reached.then(() => 'inside' as const),
          pending.then(() => 'answered' as const),
        ]);
        if (got === 'inside') {
          gate.open();
          return pending;
        }
        const answer = await pending;
        if (answer.status !== 409 || attempt >= 50) return answer;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }

    async function errorCode(response: Response): Promise<string> {
      const body = (await response.json()) as { success: boolean; error?: { code: string } };
      assert.equal(body.success, false);
      return body.error?.code ?? '';
    }

    it(
      'sets the session cookie with __Host-, HttpOnly, SameSite=Lax, Path=/, Secure and no Domain',
      BOUNDED,
      async () => {
        const { setCookie } = await signIn('cookie-user');
        assert.match(setCookie, /^__Host-gh_session=[A-Za-z0-9_-]+; /);
        for (const attribute of ['Path=/', 'HttpOnly', 'SameSite=Lax', 'Secure']) {
          assert.ok(setCookie.split('; ').includes(attribute), `${attribute} in ${setCookie}`);
        }
        assert.doesNotMatch(setCookie, /domain=/i);
      },
    );

    it(
      'requires a session: 401 UNAUTHENTICATED without one; the cookie or a bearer token passes',
      BOUNDED,
      async () => {
        const anonymous = await request('GET', '/me');
        assert.equal(anonymous.status, 401);
        assert.equal(await errorCode(anonymous), 'UNAUTHENTICATED');
        const { token, cookie } = await signIn('user-1');
        const byCookie = await request('GET', '/me', { headers: { cookie } });
        assert.equal(byCookie.status, 200);
        assert.deepEqual(await byCookie.json(), { success: true, data: { userId: 'user-1' } });
        assert.equal(
          byCookie.headers.get('cache-control'),
          'no-store',
          'authenticated responses are not cached',
        );
        const byBearer = await request('GET', '/me', { headers: { authorization: `Bearer ${token}` } });
        assert.equal(byBearer.status, 200);
        const wrongBearer = await request('GET', '/me', {
          headers: { authorization: 'Bearer nope', cookie },
        });
        assert.equal(
          wrongBearer.status,
          401,
          'an Authorization header decides alone: no fallback to the cookie',
        );
      },
    );

    it('requires roles: 403 FORBIDDEN without one of them', BOUNDED, async () => {
      const user = await signIn('plain-user');
      const denied = await request('GET', '/admin', { headers: { cookie: user.cookie } });
      assert.equal(denied.status, 403);
      assert.equal(await errorCode(denied), 'FORBIDDEN');
      const admin = await signIn('admin-user', ['admin']);
      assert.equal((await request('GET', '/admin', { headers: { cookie: admin.cookie } })).status, 200);
      assert.equal((await request('GET', '/admin')).status, 401);
    });

    it(
      'refuses cookie-authenticated unsafe requests without a valid token from the own origin (403 CSRF_INVALID)',
      BOUNDED,
      async () => {
        const { cookie, csrfToken, token } = await signIn('csrf-user');
        const sameOrigin = { cookie, 'sec-fetch-site': 'same-origin' };
        const cases: [string, Record<string, string>][] = [
          ['no token', sameOrigin],
          ['a wrong token', { ...sameOrigin, 'x-csrf-token': 'x'.repeat(csrfToken.length) }],
          [
            'cross-site with a valid token',
            { cookie, 'sec-fetch-site': 'cross-site', 'x-csrf-token': csrfToken },
          ],
          ['a foreign Origin', { cookie, origin: 'https://evil.example', 'x-csrf-token': csrfToken }],
          ['no origin information', { cookie, 'x-csrf-token': csrfToken }],
        ];
        for (const [what, headers] of cases) {
          const response = await request('POST', '/notes', { body: {}, headers });
          assert.equal(response.status, 403, what);
          assert.equal(await errorCode(response), 'CSRF_INVALID', what);
        }
        const good = await request('POST', '/notes', {
          body: {},
          headers: { ...sameOrigin, 'x-csrf-token': csrfToken },
        });
        assert.equal(good.status, 201);
        const byOrigin = await request('POST', '/notes', {
          body: {},
          headers: { cookie, origin: OWN_ORIGIN, 'x-csrf-token': csrfToken },
        });
        assert.equal(byOrigin.status, 201);
        const bearer = await request('POST', '/notes', {
          body: {},
          headers: { authorization: `Bearer ${token}` },
        });
        assert.equal(bearer.status, 201, 'bearer requests carry no ambient credential: exempt');
      },
    );

    it('rate-limits with headers, then 429 RATE_LIMITED with Retry-After', BOUNDED, async () => {
      const statuses: number[] = [];
      let last: Response | undefined;
      for (let i = 0; i < 4; i++) {
        last = await fetch(`${app.url}/signin`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-forwarded-for': '198.51.100.7, 192.0.2.77' },
          body: JSON.stringify({ userId: `limited-${String(i)}` }),
        });
        statuses.push(last.status);
        if (i === 0) {
          assert.equal(last.headers.get('x-ratelimit-limit'), '3');
          assert.equal(last.headers.get('x-ratelimit-remaining'), '2');
          assert.match(last.headers.get('ratelimit') ?? '', /^"auth";r=2;t=\d+$/);
          assert.equal(last.headers.get('ratelimit-policy'), '"auth";q=3;w=60');
        }
      }
      assert.deepEqual(statuses, [200, 200, 200, 429], 'the fourth from one address in a minute');
      const otherClient = await request('POST', '/signin', {
        body: { userId: 'limited-other' },
        headers: { 'x-forwarded-for': '198.51.100.7, 192.0.2.78' },
      });
      assert.equal(otherClient.status, 200, 'the address one trusted proxy saw decides, not the leftmost');
      const { token } = await signIn('limited-bearer');
      const withSession = await request('POST', '/signin', {
        body: { userId: 'limited-again' },
        headers: { 'x-forwarded-for': '198.51.100.7, 192.0.2.77', authorization: `Bearer ${token}` },
      });
      assert.equal(withSession.status, 429, 'a session does not buy a fresh sign-in allowance: per IP');
      assert.ok(last);
      assert.equal(last.headers.get('retry-after'), '20');
      assert.equal(await errorCode(last), 'RATE_LIMITED');
    });

    it('spends a nonce once: a replay or another form gets 409 NONCE_INVALID', BOUNDED, async () => {
      const issued = await request('GET', '/public/forms/f1');
      const { data } = (await issued.json()) as { data: { nonce: string } };
      const first = await request('POST', '/public/forms/f1/responses', { body: { nonce: data.nonce } });
      assert.equal(first.status, 201);
      const replay = await request('POST', '/public/forms/f1/responses', { body: { nonce: data.nonce } });
      assert.equal(replay.status, 409);
      assert.equal(await errorCode(replay), 'NONCE_INVALID');
      const other = await request('GET', '/public/forms/f2');
      const otherNonce = ((await other.json()) as { data: { nonce: string } }).data.nonce;
      const foreign = await request('POST', '/public/forms/f1/responses', { body: { nonce: otherNonce } });
      assert.equal(foreign.status, 409, 'a nonce of another form');
      const missing = await request('POST', '/public/forms/f1/responses', { body: {} });
      assert.equal(missing.status, 409, 'no nonce');
    });

    it(
      'answers 409 LOCKED with Retry-After while another request holds the route lock',
      BOUNDED,
      async () => {
        const { token } = await signIn('pdf-user');
        const auth = { authorization: `Bearer ${token}` };
        const reached = gate.reached();
        const first = request('POST', '/pdf/r1', { body: {}, headers: auth });
        await inside(reached, first);
        await new Promise((resolve) => setTimeout(resolve, 1000)); // over three TTLs of 300 ms: renewed
        // Bounded: were the lock lost, this request would wait at the gate inside the handler.
        const second = await request('POST', '/pdf/r1', {
          body: {},
          headers: auth,
          signal: AbortSignal.timeout(5000),
        });
        assert.equal(second.status, 409, 'still held after three TTLs: the route lock is renewed');
        assert.ok(Number(second.headers.get('retry-after')) >= 1);
        assert.equal(await errorCode(second), 'LOCKED');
        gate.open();
        const done = await first;
        assert.equal(done.status, 200);
        const { data } = (await done.json()) as { data: { fencingToken: number } };
        assert.ok(data.fencingToken > 0);
        // The release follows the answer by a round trip: the next request may need a retry or two.
        assert.equal((await enterWhenFree('/pdf/r1', auth)).status, 200, 'released once the first answered');
      },
    );

    it(
      'keeps the route lock while the handler works, even after the client left, and frees it after',
      BOUNDED,
      async () => {
        const { token } = await signIn('abort-user');
        const auth = { authorization: `Bearer ${token}` };
        const reached = gate.reached();
        const leaving = new AbortController();
        const first = fetch(`${app.url}/pdf/r2`, {
          method: 'POST',
          headers: { ...auth, 'content-type': 'application/json' },
          body: '{}',
          signal: leaving.signal,
        }).catch(() => null);
        await reached;
        leaving.abort();
        await first;
        await new Promise((resolve) => setTimeout(resolve, 50));
        const during = await request('POST', '/pdf/r2', { body: {}, headers: auth });
        assert.equal(during.status, 409, 'the handler still works: the lock stays');
        gate.open();
        const after = await enterWhenFree('/pdf/r2', auth);
        assert.equal(after.status, 200, 'freed once the handler answered');
      },
    );

    it(
      'checks CSRF on every cookie-authenticated unsafe route, even one without requirements',
      BOUNDED,
      async () => {
        const { cookie, csrfToken } = await signIn('bare-user');
        const refused = await request('POST', '/bare', {
          body: {},
          headers: { cookie, 'sec-fetch-site': 'same-origin' },
        });
        assert.equal(refused.status, 403);
        assert.equal(await errorCode(refused), 'CSRF_INVALID');
        const allowed = await request('POST', '/bare', {
          body: {},
          headers: { cookie, 'sec-fetch-site': 'same-origin', 'x-csrf-token': csrfToken },
        });
        assert.equal(allowed.status, 200);
      },
    );

    it('answers a body it cannot parse with 400 VALIDATION_ERROR in the envelope', BOUNDED, async () => {
      const { token } = await signIn('json-user');
      const response = await fetch(`${app.url}/notes`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: '{"unterminated',
      });
      assert.equal(response.status, 400);
      assert.equal(await errorCode(response), 'VALIDATION_ERROR');
    });

    it(
      'signs out: 204, the cookie cleared, Clear-Site-Data, and the session gone everywhere',
      BOUNDED,
      async () => {
        const { cookie, csrfToken } = await signIn('leaving-user');
        const out = await request('POST', '/signout', {
          body: {},
          headers: { cookie, 'sec-fetch-site': 'same-origin', 'x-csrf-token': csrfToken },
        });
        assert.equal(out.status, 204);
        assert.match(out.headers.get('set-cookie') ?? '', /^__Host-gh_session=; .*Max-Age=0/);
        assert.equal(out.headers.get('clear-site-data'), '"cache", "cookies", "storage"');
        const after = await request('GET', '/me', { headers: { cookie } });
        assert.equal(after.status, 401);
        const body = (await after.json()) as { error: { message: string } };
        assert.match(body.error.message, /ended/);
      },
    );

    it('answers 503 SERVICE_UNAVAILABLE while the store is down', BOUNDED, async () => {
      const down = otherStore();
      await down.waitUntilReady(5000);
      const downParts = appParts(down);
      const { token } = await downParts.sessions.create({ userId: 'outage-user' });
      const outage = await build(downParts, new Gate());
      try {
        await down.close();
        const response = await fetch(`${outage.url}/me`, { headers: { authorization: `Bearer ${token}` } });
        assert.equal(response.status, 503);
        assert.equal(response.headers.get('retry-after'), '1');
        assert.equal(await errorCode(response), 'SERVICE_UNAVAILABLE');
      } finally {
        await outage.close();
        await downParts.sessions.close();
      }
    });
  });
}
