/**
 * The reference service as it is deployed: two `gatehouse serve` processes on one Redis and one
 * PostgreSQL behind a (simulated) load balancer, and a service whose Redis dies and comes back.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { PDFDocument } from 'pdf-lib';

import { KeyRing } from 'gatehouse';

import { AuditLog } from '../../src/service/audit.js';
import { openDatabase } from '../../src/service/db.js';
import {
  startStandalone,
  uniquePrefix,
  type Standalone,
} from '../../../gatehouse/test/harness/topologies.js';
import { Client, freshEmail, readEvents } from '../helpers/client.js';
import { spawnService, type ServiceProcess } from '../helpers/service-process.js';
import { createTestDatabase } from '../helpers/start-service.js';
import { via } from '../helpers/two-instances.js';

const PASSWORD = 'correct horse battery staple';

/** A Gotenberg stand-in that takes `delayMs` per conversion, so a render is "in progress". */
async function slowGotenberg(
  delayMs: number,
): Promise<{ url: string; server: Server; conversions: () => number }> {
  const pdf = await (async () => {
    const document = await PDFDocument.create();
    document.addPage();
    return Buffer.from(await document.save());
  })();
  let conversions = 0;
  const server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      conversions += 1;
      setTimeout(() => {
        response.writeHead(200, { 'content-type': 'application/pdf' }).end(pdf);
      }, delayMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address && typeof address === 'object');
  return { url: `http://127.0.0.1:${String(address.port)}`, server, conversions: () => conversions };
}

describe('two service processes on one Redis and one PostgreSQL', { timeout: 240_000 }, () => {
  let redis: Standalone;
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let gotenberg: Awaited<ReturnType<typeof slowGotenberg>>;
  let a: ServiceProcess;
  let b: ServiceProcess;
  const secrets: string[] = [PASSWORD];
  const secretKey = randomBytes(32).toString('hex');

  before(async () => {
    redis = await startStandalone();
    database = await createTestDatabase();
    gotenberg = await slowGotenberg(1500);
    const env = {
      REDIS_URL: `redis://127.0.0.1:${String(redis.server.port)}`,
      REDIS_KEY_PREFIX: uniquePrefix(),
      DATABASE_URL: database.url,
      SECRET_KEYS: secretKey,
      COOKIE_SECURE: 'false',
      TRUST_PROXY: '1',
      GOTENBERG_URL: gotenberg.url,
      LOG_LEVEL: 'debug',
    };
    // Both start (and migrate the same database) at once.
    [a, b] = await Promise.all([spawnService(env), spawnService(env)]);
  });

  after(async () => {
    await Promise.all([a.stop(), b.stop()]);
    gotenberg.server.close();
    await redis.destroy();
    await database.drop();
  });

  /** One user signed in on instance `on`; the same identity can be used against any instance. */
  async function signedIn(on: ServiceProcess): Promise<Client> {
    const client = new Client(on.base);
    const email = freshEmail();
    await client.signUp(email);
    await client.signIn(email);
    secrets.push(email, String(client.sessionToken), String(client.accessToken), String(client.csrfToken));
    return client;
  }

  it('accepts a session made on one instance on the other, by cookie, session token and access token', async () => {
    const client = await signedIn(a);
    const onB = via(client, b);
    for (const as of ['cookie', 'session-bearer', 'access-bearer'] as const) {
      const me = await onB.get('/api/v1/me', { as });
      assert.equal(me.status, 200, `${as}: ${me.text}`);
      assert.equal(me.json.data.session.id, client.sessionId);
    }
    // A CSRF token issued by one instance verifies on the other.
    const created = await onB.post('/api/v1/forms', { title: 'Shared', fields: [] });
    assert.equal(created.status, 201, created.text);
  });

  it('refuses on one instance, at once, a session signed out on the other, and closes its event stream there', async () => {
    const client = await signedIn(a);
    const onB = via(client, b);
    const stream = await readEvents(
      `${b.base}/api/v1/events`,
      { authorization: `Bearer ${String(client.sessionToken)}`, 'x-forwarded-for': client.ip },
      async () => {
        assert.equal(
          (await client.post('/api/v1/auth/signout', undefined, { as: 'session-bearer' })).status,
          204,
        );
        assert.equal((await onB.get('/api/v1/me', { as: 'session-bearer' })).status, 401);
      },
      5000,
    );
    assert.match(stream.text, /event: session-ended\ndata: \{"reason":"signout"\}/);
    assert.ok(stream.elapsedMs < 1000, `closed ${String(stream.elapsedMs)} ms after sign-out`);
  });

  it('refuses on one instance an access token revoked on the other', async () => {
    const client = await signedIn(a);
    const onB = via(client, b);
    assert.equal((await onB.get('/api/v1/me', { as: 'access-bearer' })).status, 200);
    const other = new Client(a.base);
    await other.signIn(String(client.user?.email));
    // Ending the session anywhere revokes its access tokens everywhere.
    assert.equal((await other.request('DELETE', `/api/v1/sessions/${String(client.sessionId)}`)).status, 204);
    const refused = await onB.get('/api/v1/me', { as: 'access-bearer' });
    assert.equal(refused.status, 401);
    assert.equal(refused.json.error.code, 'UNAUTHENTICATED');
  });

  it('shares rate limits: the eighth rapid sign-in from one address is refused whichever instance gets it', async () => {
    const address = new Client(a.base);
    const email = freshEmail();
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) {
      const target = via(address, i % 2 === 0 ? a : b);
      statuses.push((await target.post('/api/v1/auth/signin', { email, password: PASSWORD })).status);
    }
    assert.deepEqual(statuses, [401, 401, 401, 401, 401, 401, 401, 429]);
  });

  it('answers 409 LOCKED on one instance while the other renders the same PDF (through Gotenberg)', async () => {
    const owner = await signedIn(a);
    const form = await owner.post('/api/v1/forms', {
      title: 'Consent',
      fields: [{ name: 'agree', label: 'I agree', type: 'checkbox' }],
    });
    const id = String(form.json.data.form.id);
    const visitor = new Client(b.base);
    const { nonce } = (await visitor.get(`/api/v1/public/forms/${id}`)).json.data;
    const submitted = await visitor.post(`/api/v1/public/forms/${id}/responses`, {
      nonce,
      answers: { agree: true },
    });
    assert.equal(submitted.status, 201, submitted.text);
    const responseId = String(submitted.json.data.response.id);
    const before = gotenberg.conversions();
    const rendering = owner.post(`/api/v1/responses/${responseId}/pdf`);
    await sleep(400);
    const busy = await via(owner, b).post(`/api/v1/responses/${responseId}/pdf`);
    assert.equal(busy.status, 409, busy.text);
    assert.equal(busy.json.error.code, 'LOCKED');
    assert.ok(Number(busy.headers.get('retry-after')) >= 1);
    const done = await rendering;
    assert.equal(done.status, 200);
    assert.ok(done.text.startsWith('%PDF-'));
    assert.equal(gotenberg.conversions() - before, 1, 'one render, not two');
    assert.equal((await via(owner, b).post(`/api/v1/responses/${responseId}/pdf`)).status, 200);
  });

  it('keeps tokens, passwords, cookies and emails out of both logs, and one verifiable audit chain', async () => {
    const output = a.output() + b.output();
    assert.ok(output.length > 1000);
    for (const secret of secrets) assert.ok(!output.includes(secret), 'a secret or an email reached the log');
    assert.doesNotMatch(output, /"(authorization|cookie|x-csrf-token)":"(?!\[redacted\])/i);
    const db = await openDatabase(database.url, '');
    try {
      const keyRing = new KeyRing([Buffer.from(secretKey, 'hex')]);
      const verification = await new AuditLog(db, { info() {}, warn() {}, error() {} }, { keyRing }).verify();
      assert.equal(verification.ok, true, JSON.stringify(verification));
      assert.ok(verification.rows > 10);
    } finally {
      await db.close();
    }
  });
});

describe('Redis killed under a running service with durable sessions', { timeout: 180_000 }, () => {
  let redis: Standalone;
  let service: ServiceProcess;
  let dataDir: string;

  before(async () => {
    redis = await startStandalone();
    dataDir = mkdtempSync(join(tmpdir(), 'gh-degrade-'));
    service = await spawnService({
      REDIS_URL: `redis://127.0.0.1:${String(redis.server.port)}`,
      REDIS_KEY_PREFIX: uniquePrefix(),
      DATA_DIR: dataDir,
      SECRET_KEYS: randomBytes(32).toString('hex'),
      COOKIE_SECURE: 'false',
      TRUST_PROXY: '1',
      SESSION_DURABLE: 'true',
      LOG_LEVEL: 'warn',
    });
  });

  after(async () => {
    await service.stop();
    await redis.destroy();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('follows the degradation table, then recovers without a restart', async () => {
    const client = new Client(service.base);
    const email = freshEmail();
    await client.signUp(email);
    await client.signIn(email);
    const signedOut = new Client(service.base);
    await signedOut.signIn(email);
    assert.equal((await signedOut.post('/api/v1/auth/signout')).status, 204);
    const form = await client.post('/api/v1/forms', {
      title: 'Intake',
      fields: [{ name: 'a', label: 'A', type: 'text' }],
    });
    const formId = String(form.json.data.form.id);
    const { nonce } = (await client.get(`/api/v1/public/forms/${formId}`)).json.data;

    const leaving = new Client(service.base);
    await leaving.signIn(email);
    await redis.server.kill();
    const readyStarted = Date.now();
    const ready = await client.get('/ready');
    assert.equal(ready.status, 503);
    assert.ok(Date.now() - readyStarted < 1000, '/ready answers within a second');

    // Sessions validate from SQL, and a revoked one stays revoked.
    const me = await client.get('/api/v1/me', { as: 'session-bearer' });
    assert.equal(me.status, 200, me.text);
    const byAccessToken = await client.get('/api/v1/me', { as: 'access-bearer' });
    assert.equal(byAccessToken.status, 200, byAccessToken.text);
    assert.equal((await client.get('/api/v1/me')).status, 200, 'by cookie too');
    assert.equal((await signedOut.get('/api/v1/me', { as: 'session-bearer' })).status, 401);
    // CSRF still verifies (HMAC), rate limits fall back to the local limiter: a write works.
    const created = await client.post('/api/v1/forms', { title: 'While Redis is down', fields: [] });
    assert.equal(created.status, 201, created.text);
    assert.ok(created.headers.get('x-ratelimit-limit'));
    // Nonces and locks fail closed.
    const submission = await client.post(`/api/v1/public/forms/${formId}/responses`, {
      nonce,
      answers: { a: 'x' },
    });
    assert.equal(submission.status, 503, submission.text);
    assert.equal(submission.json.error.code, 'SERVICE_UNAVAILABLE');
    const lock = await client.post(`/api/v1/forms/${formId}/lock`);
    assert.equal(lock.status, 503);
    assert.equal(lock.json.error.code, 'SERVICE_UNAVAILABLE');
    const health = await client.get('/health', { as: 'access-bearer' });
    assert.equal(health.status, 200);
    assert.equal(health.json.status, 'degraded');
    // Signing out while Redis is down ends the session in SQL and clears the cookie.
    const out = await leaving.post('/api/v1/auth/signout');
    assert.equal(out.status, 204, out.text);
    assert.equal(leaving.cookie, undefined);
    assert.equal((await leaving.get('/api/v1/me', { as: 'session-bearer' })).status, 401);
    assert.match((await client.get('/metrics')).text, /gatehouse_degraded 1/);

    await redis.server.restart();
    const deadline = Date.now() + 20_000;
    while ((await client.get('/ready')).status !== 200) {
      assert.ok(Date.now() < deadline, 'the service did not recover');
      await sleep(200);
    }
    assert.equal((await client.get('/health')).json.status, 'healthy');
    assert.equal((await client.get('/api/v1/me', { as: 'session-bearer' })).status, 200);
    assert.equal((await signedOut.get('/api/v1/me', { as: 'session-bearer' })).status, 401, 'still revoked');
    assert.equal(
      (await leaving.get('/api/v1/me', { as: 'session-bearer' })).status,
      401,
      'signed out during the outage',
    );
    // This Redis came back empty; CSRF tokens verify by their MAC, so earlier ones still work.
    const retaken = await client.post(`/api/v1/forms/${formId}/lock`);
    assert.equal(retaken.status, 200, retaken.text);
    const fresh = (await client.get(`/api/v1/public/forms/${formId}`)).json.data.nonce;
    const submitted = await client.post(`/api/v1/public/forms/${formId}/responses`, {
      nonce: fresh,
      answers: { a: 'x' },
    });
    assert.equal(submitted.status, 201);
  });
});
