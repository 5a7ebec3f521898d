import assert from 'node:assert/strict';
import { createPrivateKey, randomBytes, type KeyObject } from 'node:crypto';
import { describe, it } from 'node:test';

import {
  calculateJwkThumbprint,
  createLocalJWKSet,
  decodeProtectedHeader,
  jwtVerify,
  SignJWT,
  type JWTHeaderParameters,
  type JWTPayload,
} from 'jose';

import { KeyRing } from 'gatehouse';
import {
  ACCESS_TOKEN_KEY_PURPOSE,
  AccessTokens,
  looksLikeJwt,
  MAX_ACCESS_TOKEN_LENGTH,
} from '../../src/service/access-tokens.js';

const T0 = Date.UTC(2030, 0, 1);
const TTL_MS = 10 * 60_000;

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

function decodePayload(token: string): Record<string, unknown> {
  const part = token.split('.')[1] ?? '';
  return JSON.parse(Buffer.from(part, 'base64url').toString()) as Record<string, unknown>;
}

/** The private key the ring's newest secret key gives, as the module derives it: for forging tests. */
function privateKeyOf(ring: KeyRing): KeyObject {
  const seed = ring.derivedKeys(ACCESS_TOKEN_KEY_PURPOSE)[0];
  assert.ok(seed);
  return createPrivateKey({
    key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]),
    format: 'der',
    type: 'pkcs8',
  });
}

function kidOf(tokens: AccessTokens): string {
  const kid = tokens.jwks().keys[0]?.kid;
  assert.ok(kid);
  return kid;
}

/** A token signed by the ring's newest key with any header and payload, bypassing `issue`. */
async function signRaw(
  ring: KeyRing,
  tokens: AccessTokens,
  payload: JWTPayload,
  header: Partial<JWTHeaderParameters> = {},
): Promise<string> {
  return new SignJWT(payload)
    .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT', kid: kidOf(tokens), ...header })
    .sign(privateKeyOf(ring));
}

function validPayload(now = T0): JWTPayload {
  const iat = Math.floor(now / 1000);
  return { sub: 'user-1', sid: 'session-1', jti: 'jti-1', iat, exp: iat + 60 };
}

describe('access tokens', () => {
  it('round-trips: issue then verify gives the claims back', async () => {
    const tokens = new AccessTokens(new KeyRing([randomBytes(32)]), {
      issuer: 'https://auth.example',
      audience: 'api',
      ttlMs: TTL_MS,
      clock: () => T0 + 123,
    });
    const issued = await tokens.issue({ sub: 'user-42', sid: 'handle-abc' });
    assert.match(issued.jti, /^[A-Za-z0-9_-]{22}$/, '128 bits, base64url');
    assert.equal(issued.expiresAtMs, T0 + TTL_MS);

    const claims = await tokens.verify(issued.token);
    assert.deepEqual(claims, {
      sub: 'user-42',
      sid: 'handle-abc',
      org: null,
      roles: [],
      jti: issued.jti,
      issuedAtMs: T0,
      expiresAtMs: T0 + TTL_MS,
    });

    const header = decodeProtectedHeader(issued.token);
    assert.deepEqual(header, { alg: 'EdDSA', typ: 'JWT', kid: kidOf(tokens) });
    const payload = decodePayload(issued.token);
    assert.equal(payload['iss'], 'https://auth.example');
    assert.equal(payload['aud'], 'api');
    assert.equal(payload['iat'], T0 / 1000);
    assert.equal(payload['exp'], (T0 + TTL_MS) / 1000);

    const other = await tokens.issue({ sub: 'user-42', sid: 'handle-abc' });
    assert.notEqual(other.jti, issued.jti, 'a fresh jti each time');
  });

  it('carries the organization and the roles, and refuses malformed ones', async () => {
    const ring = new KeyRing([randomBytes(32)]);
    const tokens = new AccessTokens(ring, { issuer: 'gatehouse', audience: 'gatehouse' });
    const issued = await tokens.issue({ sub: 'u', sid: 's', org: 'org-1', roles: ['owner', 'member'] });
    const claims = await tokens.verify(issued.token);
    assert.ok(claims);
    assert.equal(claims.org, 'org-1');
    assert.deepEqual(claims.roles, ['owner', 'member']);
    const payload = decodePayload(issued.token);
    assert.deepEqual(
      [payload['iss'], payload['aud'], payload['org'], payload['roles'], typeof payload['iat']],
      ['gatehouse', 'gatehouse', 'org-1', ['owner', 'member'], 'number'],
    );
    await assert.rejects(tokens.issue({ sub: 'u', sid: 's', org: '' }), TypeError);
    await assert.rejects(tokens.issue({ sub: 'u', sid: 's', roles: [''] }), TypeError);
    await assert.rejects(tokens.issue({ sub: 'u', sid: 's', roles: Array(33).fill('r') }), TypeError);
    // Signed by the right key but with roles that are not a list of names: refused.
    const forgedRoles = await signRaw(ring, tokens, { ...validPayload(Date.now()), roles: 'admin' });
    assert.equal(await new AccessTokens(ring).verify(forgedRoles), null);
    const wellFormed = await signRaw(ring, tokens, { ...validPayload(Date.now()), roles: ['admin'] });
    assert.deepEqual((await new AccessTokens(ring).verify(wellFormed))?.roles, ['admin']);
  });

  it('defaults to a 15-minute lifetime and no iss/aud', async () => {
    const tokens = new AccessTokens(new KeyRing([randomBytes(32)]), { clock: () => T0 });
    const issued = await tokens.issue({ sub: 'u', sid: 's' });
    assert.equal(issued.expiresAtMs, T0 + 15 * 60_000);
    const payload = decodePayload(issued.token);
    assert.equal('iss' in payload, false);
    assert.equal('aud' in payload, false);
  });

  it('expires: refused after exp plus the 5 s clock tolerance, and when issued in the future', async () => {
    let now = T0;
    const tokens = new AccessTokens(new KeyRing([randomBytes(32)]), { ttlMs: TTL_MS, clock: () => now });
    const { token } = await tokens.issue({ sub: 'u', sid: 's' });
    now = T0 + TTL_MS - 1;
    assert.ok(await tokens.verify(token));
    now = T0 + TTL_MS + 4_000;
    assert.ok(await tokens.verify(token), 'within the clock tolerance');
    now = T0 + TTL_MS + 6_000;
    assert.equal(await tokens.verify(token), null, 'expired');
    now = T0 - 4_000;
    assert.ok(await tokens.verify(token), 'issuer clock slightly ahead: tolerated');
    now = T0 - 6_000;
    assert.equal(await tokens.verify(token), null, 'iat in the future');
  });

  it('refuses a validly signed token older than ttlMs even when its exp says otherwise', async () => {
    const ring = new KeyRing([randomBytes(32)]);
    let now = T0;
    const tokens = new AccessTokens(ring, { ttlMs: 60_000, clock: () => now });
    const token = await signRaw(ring, tokens, { ...validPayload(T0), exp: T0 / 1000 + 3600 });
    assert.ok(await tokens.verify(token));
    now = T0 + 70_000;
    assert.equal(await tokens.verify(token), null);
  });

  it('refuses a tampered payload or signature', async () => {
    const tokens = new AccessTokens(new KeyRing([randomBytes(32)]));
    const { token } = await tokens.issue({ sub: 'user-1', sid: 'session-1' });
    const [header = '', payload = '', signature = ''] = token.split('.');
    const claims = decodePayload(token);

    const elevated = `${header}.${b64url({ ...claims, sub: 'admin' })}.${signature}`;
    assert.equal(await tokens.verify(elevated), null, 'payload changed');

    const mid = Math.floor(signature.length / 2);
    const flipped = signature[mid] === 'A' ? 'B' : 'A';
    const badSignature = `${header}.${payload}.${signature.slice(0, mid)}${flipped}${signature.slice(mid + 1)}`;
    assert.equal(await tokens.verify(badSignature), null, 'signature changed');

    const otherHeader = b64url({ alg: 'EdDSA', typ: 'JWT', kid: 'x' });
    assert.equal(await tokens.verify(`${otherHeader}.${payload}.${signature}`), null, 'header changed');
    assert.ok(await tokens.verify(token), 'the original still verifies');
  });

  it('refuses alg none and HS256 tokens, even with a kid of the ring', async () => {
    const ring = new KeyRing([randomBytes(32)]);
    const tokens = new AccessTokens(ring);
    const kid = kidOf(tokens);
    const now = Math.floor(Date.now() / 1000);
    const payload = { sub: 'admin', sid: 's', jti: 'j', iat: now, exp: now + 60 };

    const unsecured = `${b64url({ alg: 'none', typ: 'JWT', kid })}.${b64url(payload)}.`;
    assert.equal(await tokens.verify(unsecured), null);
    const unsecuredWithJunk = `${b64url({ alg: 'none', typ: 'JWT', kid })}.${b64url(payload)}.AAAA`;
    assert.equal(await tokens.verify(unsecuredWithJunk), null);

    // Algorithm confusion: HMAC keyed with the published public key, or with a derived secret.
    const x = tokens.jwks().keys[0]?.x ?? '';
    for (const secret of [Buffer.from(x, 'base64url'), Buffer.from(x), randomBytes(32)]) {
      const hs256 = await new SignJWT(payload)
        .setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid })
        .sign(secret);
      assert.equal(await tokens.verify(hs256), null);
    }
    assert.ok(await tokens.verify(await signRaw(ring, tokens, payload)), 'control: the same claims, EdDSA');
    // RFC 9864's fully-specified "Ed25519" names the same signature; still only "EdDSA" is accepted.
    assert.equal(await tokens.verify(await signRaw(ring, tokens, payload, { alg: 'Ed25519' })), null);
  });

  it('refuses tokens from another ring, an unknown or missing kid, a wrong typ', async () => {
    const ring = new KeyRing([randomBytes(32)]);
    const tokens = new AccessTokens(ring);
    const stranger = new AccessTokens(new KeyRing([randomBytes(32)]));
    const { token } = await stranger.issue({ sub: 'u', sid: 's' });
    assert.equal(await tokens.verify(token), null, 'signed by another ring');

    const strangerRing = new KeyRing([randomBytes(32)]);
    const forged = await new SignJWT(validPayload(Date.now()))
      .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT', kid: kidOf(tokens) })
      .sign(privateKeyOf(strangerRing));
    assert.equal(await tokens.verify(forged), null, 'another key claiming our kid');

    const payload = validPayload(Date.now());
    assert.ok(await tokens.verify(await signRaw(ring, tokens, payload)), 'control: our key, our kid');
    assert.equal(await tokens.verify(await signRaw(ring, tokens, payload, { kid: 'nope' })), null);
    const noKid = await new SignJWT(payload)
      .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' })
      .sign(privateKeyOf(ring));
    assert.equal(await tokens.verify(noKid), null, 'no kid');
    assert.equal(await tokens.verify(await signRaw(ring, tokens, payload, { typ: 'at+jwt' })), null);
  });

  it('requires sub, sid, jti, iat and exp, as non-empty strings where strings', async () => {
    const ring = new KeyRing([randomBytes(32)]);
    const tokens = new AccessTokens(ring);
    const base = validPayload(Date.now());
    assert.ok(await tokens.verify(await signRaw(ring, tokens, base)));
    for (const claim of ['sub', 'sid', 'jti', 'iat', 'exp'] as const) {
      const { [claim]: _dropped, ...rest } = base;
      assert.equal(await tokens.verify(await signRaw(ring, tokens, rest)), null, `without ${claim}`);
    }
    for (const [claim, value] of [
      ['sid', 42],
      ['sid', ''],
      ['sid', ['s']],
      ['jti', ''],
      ['iat', 'now'],
      ['exp', String(base.exp)],
    ] as const) {
      const token = await signRaw(ring, tokens, { ...base, [claim]: value });
      assert.equal(await tokens.verify(token), null, `${claim} = ${JSON.stringify(value)}`);
    }
  });

  it('checks iss and aud when configured', async () => {
    const ring = new KeyRing([randomBytes(32)]);
    const strict = new AccessTokens(ring, { issuer: 'https://a.example', audience: 'api' });
    const { token } = await strict.issue({ sub: 'u', sid: 's' });
    assert.ok(await strict.verify(token));
    const bare = await new AccessTokens(ring).issue({ sub: 'u', sid: 's' });
    assert.equal(await strict.verify(bare.token), null, 'no iss/aud');
    const otherIssuer = await new AccessTokens(ring, { issuer: 'https://b.example', audience: 'api' }).issue({
      sub: 'u',
      sid: 's',
    });
    assert.equal(await strict.verify(otherIssuer.token), null, 'wrong iss');
    const otherAudience = await new AccessTokens(ring, {
      issuer: 'https://a.example',
      audience: 'web',
    }).issue({ sub: 'u', sid: 's' });
    assert.equal(await strict.verify(otherAudience.token), null, 'wrong aud');
  });

  it('rotates: a ring [new, old] verifies old tokens and signs with the new kid', async () => {
    const oldKey = randomBytes(32);
    const newKey = randomBytes(32);
    const before = new AccessTokens(new KeyRing([oldKey]));
    const during = new AccessTokens(new KeyRing([newKey, oldKey]));
    const after = new AccessTokens(new KeyRing([newKey]));
    const oldKid = kidOf(before);
    const newKid = kidOf(after);
    assert.notEqual(oldKid, newKid);

    const oldToken = (await before.issue({ sub: 'u', sid: 's' })).token;
    assert.equal((await during.verify(oldToken))?.sub, 'u', 'old tokens still verify');

    const newToken = (await during.issue({ sub: 'v', sid: 's' })).token;
    assert.equal(decodeProtectedHeader(newToken).kid, newKid, 'the newest key signs');
    assert.equal((await during.verify(newToken))?.sub, 'v');
    assert.equal((await after.verify(newToken))?.sub, 'v');
    assert.equal(await before.verify(newToken), null, 'instances not yet rotated refuse the new key');
    assert.equal(await after.verify(oldToken), null, 'dropping the old key ends its tokens');
  });

  it('publishes a JWKS of every key, public parts only, that verifies tokens offline with jose', async () => {
    const oldKey = randomBytes(32);
    const newKey = randomBytes(32);
    const before = new AccessTokens(new KeyRing([oldKey]), { issuer: 'https://a.example', audience: 'api' });
    const tokens = new AccessTokens(new KeyRing([newKey, oldKey]), {
      issuer: 'https://a.example',
      audience: 'api',
    });
    const jwks = tokens.jwks();
    assert.deepEqual(
      jwks.keys.map((key) => key.kid),
      [kidOf(new AccessTokens(new KeyRing([newKey]))), kidOf(before)],
      'every key of the ring, newest first',
    );
    for (const key of jwks.keys) {
      assert.deepEqual(Object.keys(key).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x']);
      assert.equal('d' in key, false);
      assert.equal(key.kty, 'OKP');
      assert.equal(key.crv, 'Ed25519');
      assert.equal(key.alg, 'EdDSA');
      assert.equal(key.use, 'sig');
      assert.equal(Buffer.from(key.x, 'base64url').length, 32);
      assert.equal(key.kid, await calculateJwkThumbprint(key), 'kid is the RFC 7638 thumbprint');
    }
    assert.ok(!JSON.stringify(jwks).includes('"d"'));
    assert.deepEqual(new AccessTokens(new KeyRing([randomBytes(32), randomBytes(32)])).jwks().keys.length, 2);

    // Another service, holding only the JWKS (e.g. fetched as JSON), verifies both generations.
    const keySet = createLocalJWKSet(JSON.parse(JSON.stringify(jwks)) as typeof jwks);
    const options = { algorithms: ['EdDSA'], issuer: 'https://a.example', audience: 'api' };
    const fresh = await tokens.issue({ sub: 'user-7', sid: 'sess-7' });
    const verified = await jwtVerify(fresh.token, keySet, options);
    assert.equal(verified.payload.sub, 'user-7');
    assert.equal(verified.payload['sid'], 'sess-7');
    assert.equal(verified.protectedHeader.kid, jwks.keys[0]?.kid);
    const older = await before.issue({ sub: 'user-8', sid: 'sess-8' });
    assert.equal((await jwtVerify(older.token, keySet, options)).payload.sub, 'user-8');
    const foreign = await new AccessTokens(new KeyRing([randomBytes(32)])).issue({ sub: 'x', sid: 'y' });
    await assert.rejects(jwtVerify(foreign.token, keySet, { algorithms: ['EdDSA'] }));
  });

  it('two instances over the same secret keys verify each other’s tokens', async () => {
    const secrets = [randomBytes(32), randomBytes(32)];
    const a = new AccessTokens(new KeyRing(secrets.map((key) => Buffer.from(key))));
    const b = new AccessTokens(new KeyRing(secrets.map((key) => Buffer.from(key))));
    assert.deepEqual(a.jwks(), b.jwks(), 'same keys, no shared storage');
    const fromA = await a.issue({ sub: 'u', sid: 's1' });
    const fromB = await b.issue({ sub: 'u', sid: 's2' });
    assert.equal((await b.verify(fromA.token))?.jti, fromA.jti);
    assert.equal((await a.verify(fromB.token))?.jti, fromB.jti);
  });

  it('tells a JWT from a session token', async () => {
    const tokens = new AccessTokens(new KeyRing([randomBytes(32)]));
    const { token } = await tokens.issue({ sub: 'u', sid: 's' });
    assert.equal(looksLikeJwt(token), true);
    assert.equal(AccessTokens.looksLikeJwt(token), true);
    const sessionToken = randomBytes(32).toString('base64url');
    assert.ok(sessionToken.length >= 43);
    assert.equal(looksLikeJwt(sessionToken), false);
    assert.equal(looksLikeJwt(`eyJ${sessionToken}`), false, 'no dots');
    assert.equal(looksLikeJwt('eyJhbGciOi.abc'), false, 'two segments');
    assert.equal(looksLikeJwt('abc.def.ghi'), false, 'not a JSON header');
    assert.equal(looksLikeJwt('eyJ a.b.c'), false, 'not base64url');
    assert.equal(looksLikeJwt(''), false);
  });

  it('refuses oversized tokens and non-strings without throwing', async () => {
    const ring = new KeyRing([randomBytes(32)]);
    const tokens = new AccessTokens(ring);
    const huge = await signRaw(ring, tokens, { ...validPayload(Date.now()), pad: 'x'.repeat(5000) });
    assert.ok(huge.length > MAX_ACCESS_TOKEN_LENGTH);
    assert.equal(await tokens.verify(huge), null, 'validly signed, but too long');
    assert.equal(await tokens.verify('eyJ' + 'A'.repeat(1_000_000)), null);
    for (const value of [undefined, null, 42, {}, [], '', 'eyJ.x.y', '...', Buffer.from('x')]) {
      assert.equal(await tokens.verify(value), null);
    }
  });

  it('validates options and claims', async () => {
    const ring = new KeyRing([randomBytes(32)]);
    for (const ttlMs of [0, -1000, 999, 1500, Number.NaN, Infinity, 25 * 3600_000]) {
      assert.throws(() => new AccessTokens(ring, { ttlMs }), TypeError, `ttlMs ${ttlMs}`);
    }
    assert.throws(() => new AccessTokens(ring, { issuer: '' }), TypeError);
    assert.throws(() => new AccessTokens(ring, { audience: 'a'.repeat(300) }), TypeError);
    assert.throws(() => new AccessTokens(ring, { issuer: 42 as unknown as string }), TypeError);
    assert.throws(() => new AccessTokens(ring, { clock: 'now' as unknown as () => number }), TypeError);
    assert.doesNotThrow(() => new AccessTokens(ring, { ttlMs: 1000 }));

    const tokens = new AccessTokens(ring);
    await assert.rejects(tokens.issue({ sub: '', sid: 's' }), TypeError);
    await assert.rejects(tokens.issue({ sub: 'u', sid: 'x'.repeat(257) }), TypeError);
    await assert.rejects(tokens.issue({ sub: 'u', sid: 7 as unknown as string }), TypeError);
  });
});
