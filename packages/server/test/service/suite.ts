/**
 * The reference service against API.md, over real HTTP: every route and every error code. Runs
 * on each store and database the service supports (see service.test.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { createLocalJWKSet, jwtVerify } from 'jose';

import { Client, freshEmail, readEvents } from './client.js';
import type { RunningService } from './start.js';

export interface SuiteTarget {
  /** Starts one service instance (the suite starts one and stops it at the end). */
  start(): Promise<RunningService>;
  /** After the suite: every Redis key and value under the service's prefix, when Redis is used. */
  redisDump?(): Promise<{ keysWithoutTtl: string[]; values: Map<string, string> }>;
  /** Whether the session cookie is the secure `__Host-` one. */
  readonly secureCookies: boolean;
}

const PASSWORD = 'correct horse battery staple';

export function serviceSuite(name: string, target: SuiteTarget): void {
  describe(`reference service: ${name}`, { timeout: 240_000 }, () => {
    let running: RunningService;
    let base: string;
    /** Secrets and PHI the tests sent, which Redis must never hold in clear. */
    const secrets = new Set<string>();
    const remember = (...values: (string | undefined)[]) => {
      for (const value of values) if (value) secrets.add(value);
    };

    before(async () => {
      Client.secureOrigins = target.secureCookies;
      running = await target.start();
      base = running.base;
    });
    after(async () => {
      await running.close();
    });

    async function member(): Promise<Client> {
      const client = new Client(base);
      const email = freshEmail();
      await client.signUp(email);
      await client.signIn(email);
      remember(email, client.sessionToken, client.csrfToken, client.accessToken);
      return client;
    }

    it('signs up, normalising the email, and refuses duplicates and bad input', async () => {
      const client = new Client(base);
      const email = freshEmail();
      const created = await client.signUp(`  ${email.toUpperCase()} `);
      assert.equal(created.json.success, true);
      assert.equal(created.json.data.user.email, email);
      assert.match(created.json.data.user.id, /^[0-9a-f-]{36}$/);
      assert.match(created.json.data.user.organizationId, /^[0-9a-f-]{36}$/);
      const again = await client.post('/api/v1/auth/signup', { email, password: PASSWORD });
      assert.equal(again.status, 409);
      assert.equal(again.json.error.code, 'CONFLICT');
      for (const body of [
        { email: 'not-an-email', password: PASSWORD },
        { email: freshEmail(), password: 'short' },
        { email: freshEmail() },
        { email: 42, password: PASSWORD },
        { email: freshEmail(), password: ['array'] },
      ]) {
        const refused = await new Client(base).post('/api/v1/auth/signup', body);
        assert.equal(refused.status, 400, JSON.stringify(body));
        assert.equal(refused.json.success, false);
        assert.equal(refused.json.error.code, 'VALIDATION_ERROR');
      }
      const malformed = await new Client(base).request('POST', '/api/v1/auth/signup', {
        rawBody: '{"email": ',
      });
      assert.equal(malformed.status, 400);
      assert.equal(malformed.json.error.code, 'VALIDATION_ERROR');
      assert.doesNotMatch(malformed.text, /at .*\.js|node_modules/);
    });

    it('signs in with a cookie, a session token, a CSRF token and an access token', async () => {
      const client = new Client(base);
      const email = freshEmail();
      await client.signUp(email);
      const answer = await client.signIn(email);
      const data = answer.json.data;
      assert.deepEqual(Object.keys(data.user).sort(), ['email', 'id', 'organizationId', 'roles']);
      assert.equal(answer.headers.get('x-session-id'), data.session.id);
      assert.notEqual(data.session.id, data.sessionToken);
      assert.ok(Date.parse(data.session.expiresAt) > Date.now());
      assert.ok(Date.parse(data.session.idleExpiresAt) > Date.now());
      const cookie = answer.headers.get('set-cookie') ?? '';
      const name = target.secureCookies ? '__Host-gh_session' : 'gh_session';
      assert.ok(cookie.startsWith(`${name}=`), cookie);
      assert.match(cookie, /HttpOnly/);
      assert.match(cookie, /SameSite=Lax/);
      assert.match(cookie, /Path=\//);
      assert.equal(/Secure/.test(cookie), target.secureCookies);
      assert.doesNotMatch(cookie, /Domain=/i);
      remember(email, data.sessionToken, data.csrfToken, data.accessToken);

      for (const as of ['cookie', 'session-bearer', 'access-bearer'] as const) {
        const me = await client.get('/api/v1/me', { as });
        assert.equal(me.status, 200, `${as}: ${me.text}`);
        assert.equal(me.json.data.user.email, email);
        assert.equal(me.json.data.session.id, data.session.id);
        assert.equal(me.headers.get('cache-control'), 'no-store');
      }
    });

    it('answers an unknown email and a wrong password alike with 401', async () => {
      const client = new Client(base);
      const email = freshEmail();
      await client.signUp(email);
      const wrong = await client.post('/api/v1/auth/signin', { email, password: 'wrong password here' });
      const unknown = await client.post('/api/v1/auth/signin', { email: freshEmail(), password: PASSWORD });
      for (const answer of [wrong, unknown]) {
        assert.equal(answer.status, 401);
        assert.equal(answer.json.error.code, 'UNAUTHENTICATED');
      }
      assert.equal(wrong.json.error.message, unknown.json.error.message);
      const anonymous = await new Client(base).get('/api/v1/me');
      assert.equal(anonymous.status, 401);
      assert.equal(anonymous.json.error.code, 'UNAUTHENTICATED');
    });

    it('checks CSRF on cookie-authenticated unsafe requests only', async () => {
      const client = await member();
      const form = { title: 'Intake', fields: [{ name: 'name', label: 'Name', type: 'text' }] };
      const cases: [string, Record<string, string>][] = [
        ['no token', { origin: client.origin }],
        ['cross-site', { 'sec-fetch-site': 'cross-site', 'x-csrf-token': String(client.csrfToken) }],
        ['foreign origin', { origin: 'https://evil.example', 'x-csrf-token': String(client.csrfToken) }],
        ['neither header', { 'x-csrf-token': String(client.csrfToken) }],
        ['wrong token', { origin: client.origin, 'x-csrf-token': 'A'.repeat(52) }],
      ];
      for (const [label, headers] of cases) {
        const refused = await client.post('/api/v1/forms', form, { bare: true, headers });
        assert.equal(refused.status, 403, label);
        assert.equal(refused.json.error.code, 'CSRF_INVALID', label);
      }
      const sameOrigin = await client.post('/api/v1/forms', form, {
        bare: true,
        headers: { 'sec-fetch-site': 'same-origin', 'x-csrf-token': String(client.csrfToken) },
      });
      assert.equal(sameOrigin.status, 201, sameOrigin.text);
      assert.equal((await client.post('/api/v1/forms', form)).status, 201);
      assert.equal((await client.post('/api/v1/forms', form, { as: 'session-bearer' })).status, 201);
      assert.equal((await client.post('/api/v1/forms', form, { as: 'access-bearer' })).status, 201);
      const fresh = await client.get('/api/v1/auth/csrf');
      assert.equal(fresh.status, 200);
      assert.notEqual(fresh.json.data.csrfToken, client.csrfToken);
      const withFresh = await client.post('/api/v1/forms', form, {
        headers: { 'x-csrf-token': fresh.json.data.csrfToken },
      });
      assert.equal(withFresh.status, 201);
      assert.equal((await client.post('/api/v1/forms', form)).status, 201, 'earlier tokens stay valid');
    });

    it('mints access tokens from the session only, verifiable with the JWKS', async () => {
      const client = await member();
      const minted = await client.post('/api/v1/auth/token', undefined, { as: 'session-bearer' });
      assert.equal(minted.status, 200, minted.text);
      const byCookie = await client.post('/api/v1/auth/token');
      assert.equal(byCookie.status, 200, byCookie.text);
      const byAccess = await client.post('/api/v1/auth/token', undefined, { as: 'access-bearer' });
      assert.equal(byAccess.status, 403);
      assert.equal(byAccess.json.error.code, 'FORBIDDEN');
      const jwks = await client.get('/.well-known/jwks.json');
      assert.equal(jwks.status, 200);
      assert.ok(Array.isArray(jwks.json.keys) && jwks.json.keys.length >= 1);
      assert.equal(jwks.json.success, undefined, 'the JWKS is bare');
      for (const key of jwks.json.keys) assert.equal(key.d, undefined);
      const { payload, protectedHeader } = await jwtVerify(
        minted.json.data.accessToken,
        createLocalJWKSet(jwks.json),
      );
      assert.equal(protectedHeader.alg, 'EdDSA');
      assert.equal(payload.sub, client.user?.id);
      assert.equal(payload.sid, client.sessionId);
      assert.equal(typeof payload.jti, 'string');
      assert.ok(typeof payload.exp === 'number' && payload.exp - Date.now() / 1000 <= 15 * 60 + 5);
      remember(minted.json.data.accessToken, byCookie.json.data.accessToken);
    });

    it('signs out everywhere: the cookie, the session token and its access tokens stop working', async () => {
      const client = await member();
      const other = new Client(base);
      other.sessionToken = client.sessionToken;
      other.accessToken = client.accessToken;
      const out = await client.post('/api/v1/auth/signout');
      assert.equal(out.status, 204, out.text);
      assert.match(out.headers.get('set-cookie') ?? '', /Max-Age=0|Expires=Thu, 01 Jan 1970/);
      assert.equal(client.cookie, undefined);
      for (const as of ['session-bearer', 'access-bearer'] as const) {
        const refused = await other.get('/api/v1/me', { as });
        assert.equal(refused.status, 401, as);
      }
      const again = await other.post('/api/v1/auth/signout', undefined, { as: 'session-bearer' });
      assert.equal(again.status, 401);
    });

    it('lists sessions and ends one or all others', async () => {
      const email = freshEmail();
      const first = new Client(base);
      await first.signUp(email);
      await first.signIn(email);
      const second = new Client(base);
      await second.signIn(email);
      const third = new Client(base);
      await third.signIn(email);
      remember(first.sessionToken, second.sessionToken, third.sessionToken);
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
      const stranger = await member();
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
      const first = new Client(base);
      await first.signUp(email);
      for (let i = 0; i < 6; i++) {
        // Spread over addresses: the auth limit allows 7 at once per client IP.
        const client = i === 0 ? first : new Client(base);
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
      const client = await member();
      const before = client.sessionToken;
      await client.signIn(String(client.user?.email));
      assert.notEqual(client.sessionToken, before);
      const stale = new Client(base);
      stale.sessionToken = before;
      assert.equal((await stale.get('/api/v1/me', { as: 'session-bearer' })).status, 401);
    });

    it('rate-limits sign-in per client IP with the headers of API.md', async () => {
      const client = new Client(base);
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
        (await new Client(base).post('/api/v1/auth/signin', { email, password: PASSWORD })).status,
        401,
      );
      const api = await member();
      const me = await api.get('/api/v1/me');
      assert.equal(me.headers.get('x-ratelimit-limit'), '110');
    });

    it('keeps forms inside their organization, with a fenced edit lock', async () => {
      const owner = await member();
      const colleague = new Client(base);
      const invite = await owner.post('/api/v1/organizations/invites');
      assert.equal(invite.status, 201, invite.text);
      assert.ok(Date.parse(invite.json.data.expiresAt) > Date.now() + 6 * 24 * 3600 * 1000);
      const code = invite.json.data.inviteCode;
      remember(code);
      const colleagueEmail = freshEmail();
      // A refused sign-up (taken email) does not use the invite up.
      const taken = await colleague.post('/api/v1/auth/signup', {
        email: owner.user?.email,
        password: PASSWORD,
        inviteCode: code,
      });
      assert.equal(taken.status, 409);
      assert.equal(taken.json.error.code, 'CONFLICT');
      const joined = await colleague.signUp(colleagueEmail, PASSWORD, code);
      assert.equal(joined.json.data.user.organizationId, owner.user?.organizationId);
      const reused = await new Client(base).post('/api/v1/auth/signup', {
        email: freshEmail(),
        password: PASSWORD,
        inviteCode: code,
      });
      assert.equal(reused.status, 409);
      assert.equal(reused.json.error.code, 'NONCE_INVALID');
      const bogus = await new Client(base).post('/api/v1/auth/signup', {
        email: freshEmail(),
        password: PASSWORD,
        inviteCode: 'nope.nope',
      });
      assert.equal(bogus.status, 409);
      assert.equal(bogus.json.error.code, 'NONCE_INVALID');
      await colleague.signIn(colleagueEmail);
      const outsider = await member();

      const created = await owner.post('/api/v1/forms', {
        title: 'Patient intake',
        fields: [
          { name: 'fullName', label: 'Full name', type: 'text' },
          { name: 'dob', label: 'Date of birth', type: 'date' },
          { name: 'plan', label: 'Plan', type: 'select', options: ['basic', 'plus'] },
        ],
      });
      assert.equal(created.status, 201, created.text);
      const form = created.json.data.form;
      assert.equal((await colleague.get(`/api/v1/forms/${String(form.id)}`)).status, 200);
      const hidden = await outsider.get(`/api/v1/forms/${String(form.id)}`);
      assert.equal(hidden.status, 404);
      assert.equal(hidden.json.error.code, 'NOT_FOUND');
      assert.equal((await owner.get('/api/v1/forms/00000000-0000-0000-0000-000000000000')).status, 404);
      const badField = await owner.post('/api/v1/forms', {
        title: 'x',
        fields: [{ name: 'a', label: 'A', type: 'weird' }],
      });
      assert.equal(badField.status, 400);

      const lockPath = `/api/v1/forms/${String(form.id)}/lock`;
      const lock = await owner.post(lockPath);
      assert.equal(lock.status, 200, lock.text);
      const { token, fencingToken } = lock.json.data.lock;
      remember(token);
      assert.ok(Number.isSafeInteger(fencingToken) && fencingToken > 0);
      assert.ok(Date.parse(lock.json.data.lock.expiresAt) > Date.now() + 100_000);
      const conflict = await colleague.post(lockPath);
      assert.equal(conflict.status, 409);
      assert.equal(conflict.json.error.code, 'LOCKED');
      assert.ok(Number(conflict.headers.get('retry-after')) >= 1);
      // The same user in another session is another holder too.
      const ownerElsewhere = new Client(base);
      await ownerElsewhere.signIn(String(owner.user?.email));
      assert.equal((await ownerElsewhere.post(lockPath)).status, 409);
      const renewed = await owner.post(lockPath, undefined, { headers: { 'x-lock-token': token } });
      assert.equal(renewed.status, 200);
      assert.equal(renewed.json.data.lock.fencingToken, fencingToken);
      const update = { title: 'Patient intake v2', fields: form.fields };
      const unlocked = await colleague.request('PUT', `/api/v1/forms/${String(form.id)}`, { body: update });
      assert.equal(unlocked.status, 409);
      assert.equal(unlocked.json.error.code, 'LOCKED');
      const written = await owner.request('PUT', `/api/v1/forms/${String(form.id)}`, {
        body: update,
        headers: { 'x-lock-token': token },
      });
      assert.equal(written.status, 200, written.text);
      assert.equal(written.json.data.form.title, 'Patient intake v2');
      const wrongRelease = await colleague.request('DELETE', lockPath, {
        headers: { 'x-lock-token': 'A'.repeat(22) },
      });
      assert.equal(wrongRelease.status, 409);
      const noToken = await owner.request('DELETE', lockPath);
      assert.equal(noToken.status, 400);
      assert.equal(noToken.json.error.code, 'VALIDATION_ERROR');
      assert.equal(
        (await owner.request('DELETE', lockPath, { headers: { 'x-lock-token': token } })).status,
        204,
      );
      // The next holder gets a greater fencing token; the old holder can no longer write.
      const next = await colleague.post(lockPath);
      assert.equal(next.status, 200);
      assert.ok(next.json.data.lock.fencingToken > fencingToken);
      const stale = await owner.request('PUT', `/api/v1/forms/${String(form.id)}`, {
        body: { title: 'stale', fields: form.fields },
        headers: { 'x-lock-token': token },
      });
      assert.equal(stale.status, 409);
      // A stale token while the lock is free gets a new lock.
      assert.equal(
        (
          await colleague.request('DELETE', lockPath, {
            headers: { 'x-lock-token': next.json.data.lock.token },
          })
        ).status,
        204,
      );
      const retaken = await owner.post(lockPath, undefined, { headers: { 'x-lock-token': token } });
      assert.equal(retaken.status, 200);
      assert.notEqual(retaken.json.data.lock.token, token);
      assert.ok(retaken.json.data.lock.fencingToken > next.json.data.lock.fencingToken);

      // Public submission with single-use nonces, then a PDF inside the organization only.
      const publicClient = new Client(base);
      const publicForm = await publicClient.get(`/api/v1/public/forms/${String(form.id)}`);
      assert.equal(publicForm.status, 200);
      assert.equal(publicForm.json.data.form.id, form.id);
      const nonce = publicForm.json.data.nonce;
      remember(nonce);
      const answers = { fullName: 'Jane Q. Patient-Secret', dob: '1980-02-29', plan: 'plus' };
      remember(answers.fullName);
      const submitted = await publicClient.post(`/api/v1/public/forms/${String(form.id)}/responses`, {
        nonce,
        answers,
      });
      assert.equal(submitted.status, 201, submitted.text);
      const responseId = submitted.json.data.response.id;
      const replay = await publicClient.post(`/api/v1/public/forms/${String(form.id)}/responses`, {
        nonce,
        answers,
      });
      assert.equal(replay.status, 409);
      assert.equal(replay.json.error.code, 'NONCE_INVALID');
      const missing = await publicClient.post(`/api/v1/public/forms/${String(form.id)}/responses`, {
        answers,
      });
      assert.equal(missing.status, 409);
      assert.equal(missing.json.error.code, 'NONCE_INVALID');
      const otherForm = await owner.post('/api/v1/forms', { title: 'Other', fields: [] });
      const foreignNonce = (
        await publicClient.get(`/api/v1/public/forms/${String(otherForm.json.data.form.id)}`)
      ).json.data.nonce;
      const foreign = await publicClient.post(`/api/v1/public/forms/${String(form.id)}/responses`, {
        nonce: foreignNonce,
        answers,
      });
      assert.equal(foreign.status, 409);
      const badAnswers = await publicClient.post(`/api/v1/public/forms/${String(form.id)}/responses`, {
        nonce: (await publicClient.get(`/api/v1/public/forms/${String(form.id)}`)).json.data.nonce,
        answers: { plan: 'gold' },
      });
      assert.equal(badAnswers.status, 400);
      assert.equal(
        (await publicClient.get('/api/v1/public/forms/00000000-0000-0000-0000-000000000000')).status,
        404,
      );

      const pdf = await colleague.post(`/api/v1/responses/${String(responseId)}/pdf`);
      assert.equal(pdf.status, 200, pdf.text.slice(0, 200));
      assert.equal(pdf.headers.get('content-type'), 'application/pdf');
      assert.ok(pdf.text.startsWith('%PDF-'));
      assert.equal((await outsider.post(`/api/v1/responses/${String(responseId)}/pdf`)).status, 404);
      // While a render of this response is in progress anywhere, another gets 409 LOCKED.
      const held = await running.service.context.gh.locks.tryAcquire(`pdf:${String(responseId)}`, {
        ttl: 10_000,
      });
      assert.ok(held.acquired);
      const busy = await owner.post(`/api/v1/responses/${String(responseId)}/pdf`);
      assert.equal(busy.status, 409);
      assert.equal(busy.json.error.code, 'LOCKED');
      assert.ok(Number(busy.headers.get('retry-after')) >= 1);
      await held.release();
      assert.equal((await owner.post(`/api/v1/responses/${String(responseId)}/pdf`)).status, 200);
    });

    it('refuses unstorable or oversized answers before spending the nonce; field names are only names', async () => {
      const owner = await member();
      const created = await owner.post('/api/v1/forms', {
        title: 'Edge cases',
        fields: [
          { name: 'constructor', label: 'A field named like a prototype member', type: 'text' },
          { name: 'notes', label: 'Notes', type: 'textarea' },
        ],
      });
      assert.equal(created.status, 201, created.text);
      const id = String(created.json.data.form.id);
      const visitor = new Client(base);
      const nonce = (await visitor.get(`/api/v1/public/forms/${id}`)).json.data.nonce;
      // JSON escapes, as a client would send them (a lone surrogate in a JS string would be
      // replaced by U+FFFD on the way out).
      for (const notes of ['NUL \\u0000 inside', 'half a pair \\ud800 here']) {
        const refused = await visitor.request('POST', `/api/v1/public/forms/${id}/responses`, {
          rawBody: `{"nonce": ${JSON.stringify(nonce)}, "answers": {"notes": "${notes}"}}`,
        });
        assert.equal(refused.status, 400, refused.text);
        assert.equal(refused.json.error.code, 'VALIDATION_ERROR');
      }
      const tooLong = await visitor.post(`/api/v1/public/forms/${id}/responses`, {
        nonce,
        answers: { notes: 'x'.repeat(10_001) },
      });
      assert.equal(tooLong.status, 400);
      // Unanswered `constructor` is just unanswered; the nonce is still good after the refusals.
      const accepted = await visitor.post(`/api/v1/public/forms/${id}/responses`, {
        nonce,
        answers: { notes: 'fine' },
      });
      assert.equal(accepted.status, 201, accepted.text);
    });

    it('answers malformed URLs and over-long ids with the envelope and a request id', async () => {
      const client = new Client(base);
      const badUrl = await client.get('/api/v1/forms/%zz');
      assert.equal(badUrl.status, 400, badUrl.text);
      assert.equal(badUrl.json.error.code, 'VALIDATION_ERROR');
      assert.ok(badUrl.headers.get('x-request-id'));
      const member2 = await member();
      const longId = await member2.get(`/api/v1/forms/${'a'.repeat(300)}`);
      assert.equal(longId.status, 404, longId.text);
      assert.equal(longId.json.error.code, 'NOT_FOUND');
      assert.ok(longId.headers.get('x-request-id'));
    });

    it('closes the event stream with session-ended when the session ends', async () => {
      const client = await member();
      const stream = await readEvents(
        `${base}/api/v1/events`,
        { authorization: `Bearer ${String(client.sessionToken)}`, 'x-forwarded-for': client.ip },
        async () => {
          assert.equal((await client.post('/api/v1/auth/signout')).status, 204);
        },
        5000,
      );
      assert.equal(stream.status, 200);
      assert.match(String(stream.contentType), /text\/event-stream/);
      assert.equal(stream.rateLimitLimit, '110', 'a limited route answers the rate-limit headers');
      // Written outside Fastify's reply, the stream still has the request id and the security headers.
      for (const name of [
        'x-request-id',
        'x-content-type-options',
        'x-frame-options',
        'content-security-policy',
      ]) {
        assert.ok(stream.headers.get(name), `the event stream lacks ${name}`);
      }
      assert.equal(stream.headers.get('cache-control'), 'no-store');
      assert.match(stream.text, /event: session-ended\ndata: \{"reason":"signout"\}/);
      assert.ok(stream.elapsedMs < 1000, `closed after ${String(stream.elapsedMs)} ms`);

      const terminated = await member();
      const other = new Client(base);
      await other.signIn(String(terminated.user?.email));
      const ended = await readEvents(
        `${base}/api/v1/events`,
        { authorization: `Bearer ${String(terminated.sessionToken)}`, 'x-forwarded-for': terminated.ip },
        async () => {
          assert.equal(
            (await other.request('DELETE', `/api/v1/sessions/${String(terminated.sessionId)}`)).status,
            204,
          );
        },
        5000,
      );
      assert.match(ended.text, /"reason":"terminated"/);
      const anonymous = await new Client(base).get('/api/v1/events');
      assert.equal(anonymous.status, 401);
    });

    it('answers errors with the envelope and the request id, never a stack', async () => {
      const client = new Client(base);
      const unknown = await client.get('/api/v1/nothing-here');
      assert.equal(unknown.status, 404);
      assert.deepEqual(Object.keys(unknown.json).sort(), ['error', 'success']);
      assert.equal(unknown.json.error.code, 'NOT_FOUND');
      assert.ok(unknown.headers.get('x-request-id'));
      const big = await client.request('POST', '/api/v1/auth/signin', {
        rawBody: JSON.stringify({ email: 'a@b.example', password: 'x'.repeat(1024 * 1024 + 10) }),
      });
      assert.equal(big.status, 413);
      assert.equal(big.json.error.code, 'PAYLOAD_TOO_LARGE');
      const health = await client.get('/health');
      assert.equal(health.headers.get('x-content-type-options'), 'nosniff');
      assert.ok(health.headers.get('referrer-policy'));
      assert.ok(health.headers.get('x-request-id'));
      const echoed = await client.get('/health', { headers: { 'x-request-id': 'trace-123' } });
      assert.equal(echoed.headers.get('x-request-id'), 'trace-123');
    });

    it('serves health, readiness, metrics, the OpenAPI document and the admin page', async () => {
      const client = new Client(base);
      const health = await client.get('/health');
      assert.equal(health.status, 200);
      assert.equal(health.json.status, 'healthy', health.text);
      assert.equal(typeof health.json.version, 'string');
      assert.equal(typeof health.json.uptimeSeconds, 'number');
      assert.equal(health.json.database.status, 'up');
      assert.ok(health.json.redis.status && health.json.redis.mode);
      const ready = await client.get('/ready');
      assert.equal(ready.status, 200, ready.text);
      const metrics = await client.get('/metrics');
      assert.equal(metrics.status, 200);
      assert.match(metrics.text, /gatehouse_http_requests_total\{/);
      assert.match(metrics.text, /gatehouse_session_validations_total/);
      assert.match(metrics.text, /gatehouse_degraded 0/);
      // The process's own: what an operator (and the soak test, bench/soak.ts) watches for leaks.
      assert.match(metrics.text, /^nodejs_heap_size_used_bytes \d/m);
      assert.match(metrics.text, /^nodejs_eventloop_lag_p99_seconds \d/m);
      assert.match(metrics.text, /^process_resident_memory_bytes \d/m);
      const openapi = await client.get('/openapi.json');
      assert.equal(openapi.status, 200);
      assert.match(openapi.json.openapi, /^3\./);
      for (const [path, method] of [
        ['/api/v1/auth/signup', 'post'],
        ['/api/v1/auth/signin', 'post'],
        ['/api/v1/auth/signout', 'post'],
        ['/api/v1/auth/csrf', 'get'],
        ['/api/v1/me', 'get'],
        ['/api/v1/auth/token', 'post'],
        ['/.well-known/jwks.json', 'get'],
        ['/api/v1/events', 'get'],
        ['/api/v1/organizations/invites', 'post'],
        ['/api/v1/sessions', 'get'],
        ['/api/v1/sessions/{id}', 'delete'],
        ['/api/v1/sessions', 'delete'],
        ['/api/v1/forms', 'post'],
        ['/api/v1/forms/{id}', 'get'],
        ['/api/v1/forms/{id}', 'put'],
        ['/api/v1/forms/{id}/lock', 'post'],
        ['/api/v1/forms/{id}/lock', 'delete'],
        ['/api/v1/public/forms/{id}', 'get'],
        ['/api/v1/public/forms/{id}/responses', 'post'],
        ['/api/v1/responses/{id}/pdf', 'post'],
        ['/health', 'get'],
        ['/ready', 'get'],
        ['/metrics', 'get'],
        ['/openapi.json', 'get'],
        ['/admin', 'get'],
      ] as const) {
        assert.ok(openapi.json.paths[path]?.[method], `${method} ${path} in /openapi.json`);
      }
      assert.equal(
        openapi.json.paths['/api/v1/auth/signup'].post.requestBody.content['application/json'].schema
          .properties.password.minLength,
        12,
      );
      const docs = await client.get('/docs');
      assert.equal(docs.status, 200);
      assert.match(docs.headers.get('content-security-policy') ?? '', /default-src 'none'/);
      assert.equal((await client.get('/admin')).status, 401);
      const plain = await member();
      const forbidden = await plain.get('/admin');
      assert.equal(forbidden.status, 403);
      assert.equal(forbidden.json.error.code, 'FORBIDDEN');
      const admin = new Client(base);
      await admin.signUp('admin@clinic.example');
      await admin.signIn('admin@clinic.example');
      assert.ok(admin.user?.roles.includes('admin'));
      const page = await admin.get('/admin');
      assert.equal(page.status, 200);
      assert.match(page.text, /gatehouse operations/);
      assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'/);
    });

    if (target.redisDump) {
      const dump = target.redisDump.bind(target);
      it('leaves Redis with a TTL on every key and nothing secret or personal in clear', async () => {
        await running.service.context.gh.sessions.flush();
        const { keysWithoutTtl, values } = await dump();
        assert.deepEqual(keysWithoutTtl, []);
        assert.ok(values.size > 0);
        assert.ok(secrets.size > 10);
        for (const [key, value] of values) {
          for (const secret of secrets) {
            assert.ok(!key.includes(secret) && !value.includes(secret), `${key} holds a secret or PHI`);
          }
          assert.doesNotMatch(`${key} ${value}`, /@clinic\.example|198\.51\./);
        }
      });
    }
  });
}
