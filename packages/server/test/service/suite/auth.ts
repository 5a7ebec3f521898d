/**
 * The suite's cases of signing up, signing in (by cookie, session token and access token), CSRF,
 * access tokens and the JWKS, and signing out everywhere.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';

import { createLocalJWKSet, jwtVerify } from 'jose';

import { Client, freshEmail } from '../../helpers/client.js';
import { PASSWORD, type SuiteContext } from './context.js';

export function authCases(suite: SuiteContext): void {
  it('signs up, normalising the email, and refuses duplicates and bad input', async () => {
    const client = new Client(suite.base);
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
      const refused = await new Client(suite.base).post('/api/v1/auth/signup', body);
      assert.equal(refused.status, 400, JSON.stringify(body));
      assert.equal(refused.json.success, false);
      assert.equal(refused.json.error.code, 'VALIDATION_ERROR');
    }
    const malformed = await new Client(suite.base).request('POST', '/api/v1/auth/signup', {
      rawBody: '{"email": ',
    });
    assert.equal(malformed.status, 400);
    assert.equal(malformed.json.error.code, 'VALIDATION_ERROR');
    assert.doesNotMatch(malformed.text, /at .*\.js|node_modules/);
  });

  it('signs in with a cookie, a session token, a CSRF token and an access token', async () => {
    const client = new Client(suite.base);
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
    const name = suite.secureCookies ? '__Host-gh_session' : 'gh_session';
    assert.ok(cookie.startsWith(`${name}=`), cookie);
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /SameSite=Lax/);
    assert.match(cookie, /Path=\//);
    assert.equal(/Secure/.test(cookie), suite.secureCookies);
    assert.doesNotMatch(cookie, /Domain=/i);
    suite.remember(email, data.sessionToken, data.csrfToken, data.accessToken);

    for (const as of ['cookie', 'session-bearer', 'access-bearer'] as const) {
      const me = await client.get('/api/v1/me', { as });
      assert.equal(me.status, 200, `${as}: ${me.text}`);
      assert.equal(me.json.data.user.email, email);
      assert.equal(me.json.data.session.id, data.session.id);
      assert.equal(me.headers.get('cache-control'), 'no-store');
    }
  });

  it('answers an unknown email and a wrong password alike with 401', async () => {
    const client = new Client(suite.base);
    const email = freshEmail();
    await client.signUp(email);
    const wrong = await client.post('/api/v1/auth/signin', { email, password: 'wrong password here' });
    const unknown = await client.post('/api/v1/auth/signin', { email: freshEmail(), password: PASSWORD });
    for (const answer of [wrong, unknown]) {
      assert.equal(answer.status, 401);
      assert.equal(answer.json.error.code, 'UNAUTHENTICATED');
    }
    assert.equal(wrong.json.error.message, unknown.json.error.message);
    const anonymous = await new Client(suite.base).get('/api/v1/me');
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.json.error.code, 'UNAUTHENTICATED');
  });

  it('checks CSRF on cookie-authenticated unsafe requests only', async () => {
    const client = await suite.member();
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
    // Login CSRF: another site must not sign a browser in (or up) as someone else.
    const crossSite = { 'sec-fetch-site': 'cross-site' };
    for (const path of ['/api/v1/auth/signin', '/api/v1/auth/signup']) {
      const refused = await new Client(suite.base).post(
        path,
        { email: freshEmail(), password: 'correct horse battery staple' },
        { headers: crossSite },
      );
      assert.equal(refused.status, 403, `${path}: ${refused.text}`);
      assert.equal(refused.json.error.code, 'CSRF_INVALID', path);
    }
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
    const client = await suite.member();
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
      // The defaults of ACCESS_TOKEN_ISSUER and ACCESS_TOKEN_AUDIENCE, required by a verifier.
      { issuer: 'gatehouse', audience: 'gatehouse' },
    );
    assert.equal(protectedHeader.alg, 'EdDSA');
    assert.equal(payload.sub, client.user?.id);
    assert.equal(payload.sid, client.sessionId);
    assert.equal(payload['org'], client.user?.organizationId);
    assert.deepEqual(payload['roles'], client.user?.roles);
    assert.equal(typeof payload.jti, 'string');
    assert.ok(typeof payload.iat === 'number' && Math.abs(payload.iat - Date.now() / 1000) < 60);
    const signIn = await jwtVerify(client.accessToken ?? '', createLocalJWKSet(jwks.json), {
      issuer: 'gatehouse',
      audience: 'gatehouse',
    });
    assert.deepEqual(
      [signIn.payload['org'], signIn.payload['roles']],
      [client.user?.organizationId, client.user?.roles],
      'the token of the sign-in answer carries the same claims',
    );
    assert.ok(typeof payload.exp === 'number' && payload.exp - Date.now() / 1000 <= 15 * 60 + 5);
    suite.remember(minted.json.data.accessToken, byCookie.json.data.accessToken);
  });

  it('signs out everywhere: the cookie, the session token and its access tokens stop working', async () => {
    const client = await suite.member();
    const other = new Client(suite.base);
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
}
