/**
 * The reference service against guessing and floods (docs/http-api.md, "Rate limits"), on
 * standalone Redis and PostgreSQL with durable sessions, over real HTTP: failed sign-ins limited
 * per account whatever the address and whether the account exists; every per-IP limit counting an
 * IPv6 client by its /64; the `anonymous` limit refusing a flood of made-up credentials before
 * any SQL query or signature check; and `TRUST_PROXY` as a list of proxy addresses.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';

import {
  startStandalone,
  uniquePrefix,
  type Standalone,
} from '../../../gatehouse/test/harness/topologies.js';
import { openDatabase, type Database } from '../../src/service/db.js';
import { Client, freshEmail } from '../helpers/client.js';
import { createTestDatabase, startService, type RunningService } from '../helpers/start-service.js';

const PASSWORD = 'correct horse battery staple';

/** A database that counts the queries that read or write sessions (durable mode's validation). */
function countingSessionQueries(db: Database): { db: Database; sessionQueries: () => number } {
  let count = 0;
  const counted = (text: string) => {
    if (text.includes('gh_sessions')) count += 1;
  };
  return {
    db: {
      kind: db.kind,
      query: (text, params) => {
        counted(text);
        return db.query(text, params);
      },
      transaction: (fn) =>
        db.transaction((tx) =>
          fn({
            query: (text, params) => {
              counted(text);
              return tx.query(text, params);
            },
          }),
        ),
      close: () => db.close(),
    },
    sessionQueries: () => count,
  };
}

/** A request from `ip` (the service trusts one proxy in these tests). */
function from(ip: string, base: string): Client {
  const client = new Client(base);
  Object.defineProperty(client, 'ip', { value: ip });
  return client;
}

/** A JWT-shaped bearer with the service's real key id and a signature that cannot verify. */
function forgedJwt(kid: string): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const payload = { sub: 'x', sid: 'y', jti: 'z', iat: Math.floor(Date.now() / 1000), exp: 9_999_999_999 };
  return `${part({ alg: 'EdDSA', typ: 'JWT', kid })}.${part(payload)}.${randomBytes(64).toString('base64url')}`;
}

describe('guessing and floods, on standalone Redis with PostgreSQL (durable sessions)', () => {
  let redis: Standalone;
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let db: Database;
  let counting: ReturnType<typeof countingSessionQueries>;
  let running: RunningService;

  before(async () => {
    redis = await startStandalone();
    database = await createTestDatabase();
    db = await openDatabase(database.url, '.');
    counting = countingSessionQueries(db);
    running = await startService(
      {
        REDIS_URL: `redis://127.0.0.1:${String(redis.server.port)}`,
        REDIS_KEY_PREFIX: uniquePrefix(),
        SESSION_DURABLE: 'true',
      },
      { database: counting.db },
    );
  });
  after(async () => {
    await running.close();
    await db.close();
    await database.drop();
    await redis.destroy();
  });

  it('refuses the 11th sign-in to one account after ten failures from ten addresses, right password or not', async () => {
    const email = freshEmail();
    await new Client(running.base).signUp(email, PASSWORD);
    for (let i = 1; i <= 10; i++) {
      const wrong = await from(`203.0.113.${String(i)}`, running.base).post('/api/v1/auth/signin', {
        email,
        password: `wrong password ${String(i)}`,
      });
      assert.equal(wrong.status, 401, `attempt ${String(i)}: ${wrong.text}`);
    }
    // The same email written another way is the same account.
    const eleventh = await from('203.0.113.11', running.base).post('/api/v1/auth/signin', {
      email: `  ${email.toUpperCase()} `,
      password: PASSWORD,
    });
    assert.equal(eleventh.status, 429, eleventh.text);
    assert.equal(eleventh.json.error.code, 'RATE_LIMITED');
    const retryAfterSeconds = Number(eleventh.headers.get('retry-after'));
    assert.ok(retryAfterSeconds > 0 && retryAfterSeconds <= 15 * 60, String(retryAfterSeconds));
    // Another account is untouched by it.
    const other = freshEmail();
    await new Client(running.base).signUp(other, PASSWORD);
    await from('203.0.113.12', running.base).signIn(other, PASSWORD);
  });

  it('counts an email without an account exactly like one with, so the answers tell nothing', async () => {
    const known = freshEmail();
    await new Client(running.base).signUp(known, PASSWORD);
    const unknown = freshEmail();
    const answers = async (email: string, octet: number) => {
      const seen: string[] = [];
      for (let i = 1; i <= 11; i++) {
        const answer = await from(`198.18.${String(octet)}.${String(i)}`, running.base).post(
          '/api/v1/auth/signin',
          { email, password: 'not the password at all' },
        );
        seen.push(
          `${String(answer.status)} ${String(answer.json.error?.code)} ${String(answer.json.error?.message)}`,
        );
      }
      return seen;
    };
    const forKnown = await answers(known, 1);
    const forUnknown = await answers(unknown, 2);
    assert.deepEqual(forUnknown, forKnown);
    assert.match(forKnown[9] ?? '', /^401 UNAUTHENTICATED/);
    assert.match(forKnown[10] ?? '', /^429 RATE_LIMITED/);
  });

  it('counts every address of one IPv6 /64 as one client, and another /64 apart', async () => {
    const email = freshEmail();
    await new Client(running.base).signUp(email, PASSWORD);
    // The auth policy admits 5 per minute + 2 at once: the 8th from the /64 is refused, whichever
    // address of it, written however.
    const statuses: number[] = [];
    for (let i = 1; i <= 8; i++) {
      const address =
        i % 2 === 0 ? `2001:db8:77:1::${i.toString(16)}` : `2001:0db8:0077:0001:0:0:${String(i)}:1`;
      const answer = await from(address, running.base).post('/api/v1/auth/signin', {
        email: freshEmail(),
        password: 'wrong password',
      });
      statuses.push(answer.status);
    }
    assert.deepEqual(statuses, [401, 401, 401, 401, 401, 401, 401, 429]);
    const otherPrefix = await from('2001:db8:77:2::1', running.base).post('/api/v1/auth/signin', {
      email,
      password: PASSWORD,
    });
    assert.equal(otherPrefix.status, 200, otherPrefix.text);
  });

  it('answers a flood of made-up bearers 429 once the anonymous limit is spent, with no SQL query or signature check after it', async () => {
    const context = running.service.context;
    const kid = context.accessTokens.jwks().keys[0]?.kid ?? '';
    let signatureChecks = 0;
    const verify = context.accessTokens.verify.bind(context.accessTokens);
    context.accessTokens.verify = (token) => {
      signatureChecks += 1;
      return verify(token);
    };
    try {
      const attacker = '192.0.2.200';
      // A member active from the same address before the flood keeps working: this instance
      // knows the session.
      const email = freshEmail();
      await new Client(running.base).signUp(email, PASSWORD);
      const member = from(attacker, running.base);
      await member.signIn(email, PASSWORD);
      assert.equal((await member.get('/api/v1/me', { as: 'session-bearer' })).status, 200);

      const statuses: number[] = [];
      let queriesAtFirstRefusal: number | undefined;
      let checksAtFirstRefusal: number | undefined;
      // The policy admits 60 per minute + 30 at once.
      for (let i = 0; i < 120; i++) {
        const bearer = i % 3 === 0 ? forgedJwt(kid) : randomBytes(44).toString('base64url').slice(0, 59);
        const answer = await from(attacker, running.base).get('/api/v1/me', {
          headers: { authorization: `Bearer ${bearer}` },
        });
        statuses.push(answer.status);
        if (answer.status === 429 && queriesAtFirstRefusal === undefined) {
          queriesAtFirstRefusal = counting.sessionQueries();
          checksAtFirstRefusal = signatureChecks;
          assert.ok(Number(answer.headers.get('retry-after')) >= 1);
        }
      }
      const firstRefused = statuses.indexOf(429);
      assert.equal(firstRefused, 90, statuses.join(','));
      assert.ok(statuses.slice(0, 90).every((status) => status === 401));
      assert.ok(statuses.slice(90).every((status) => status === 429));
      assert.ok(counting.sessionQueries() > 0, 'before the limit, unknown tokens were looked up in SQL');
      assert.equal(counting.sessionQueries(), queriesAtFirstRefusal, 'no session query after the limit');
      assert.equal(signatureChecks, checksAtFirstRefusal, 'no signature check after the limit');

      // No credential at all is refused the same way; another address is not.
      assert.equal((await from(attacker, running.base).get('/api/v1/me')).status, 429);
      assert.equal((await from('192.0.2.201', running.base).get('/api/v1/me')).status, 401);
      const known = await member.get('/api/v1/me', { as: 'session-bearer' });
      assert.equal(known.status, 200, known.text);
    } finally {
      context.accessTokens.verify = verify;
    }
  });
});

describe('TRUST_PROXY as a list of proxy addresses', () => {
  let trusting: RunningService;
  let distrusting: RunningService;
  before(async () => {
    trusting = await startService({ TRUST_PROXY: '10.0.0.0/8,127.0.0.1' });
    distrusting = await startService({ TRUST_PROXY: '10.0.0.0/8' });
  });
  after(async () => {
    await trusting.close();
    await distrusting.close();
  });

  async function signedInAddress(running: RunningService, forwardedFor: string): Promise<string> {
    const email = freshEmail();
    const client = from(forwardedFor, running.base);
    await client.signUp(email, PASSWORD);
    await client.signIn(email, PASSWORD);
    const sessions = await client.get('/api/v1/sessions');
    assert.equal(sessions.status, 200, sessions.text);
    return String(sessions.json.data.sessions[0].ipAddress);
  }

  it('believes X-Forwarded-For only from a listed peer, and takes its rightmost unlisted entry', async () => {
    // This test connects from 127.0.0.1: listed in one service, not in the other.
    assert.equal(await signedInAddress(trusting, '198.51.100.9, 10.1.2.3'), '198.51.100.9');
    assert.equal(await signedInAddress(trusting, '6.6.6.6, 198.51.100.10'), '198.51.100.10');
    assert.equal(await signedInAddress(distrusting, '198.51.100.11'), '127.0.0.1');
  });
});
