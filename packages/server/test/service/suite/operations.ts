/**
 * The suite's cases of what every route shares and of the operations routes: malformed URLs,
 * the event stream, the error envelope and the request id, health, readiness, metrics, the
 * OpenAPI document, the docs and the admin page.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';

import { changeServiceRole } from '../../../src/service/service-roles.js';
import { Client, freshEmail, readEvents } from '../../helpers/client.js';
import type { SuiteContext } from './context.js';

export function operationCases(suite: SuiteContext): void {
  it('answers malformed URLs and over-long ids with the envelope and a request id', async () => {
    const client = new Client(suite.base);
    const badUrl = await client.get('/api/v1/forms/%zz');
    assert.equal(badUrl.status, 400, badUrl.text);
    assert.equal(badUrl.json.error.code, 'VALIDATION_ERROR');
    assert.ok(badUrl.headers.get('x-request-id'));
    const member2 = await suite.member();
    const longId = await member2.get(`/api/v1/forms/${'a'.repeat(300)}`);
    assert.equal(longId.status, 404, longId.text);
    assert.equal(longId.json.error.code, 'NOT_FOUND');
    assert.ok(longId.headers.get('x-request-id'));
  });

  it('sends Cache-Control: no-store with every /api/ answer, refusals included', async () => {
    const anonymous = new Client(suite.base);
    const member = await suite.member();
    const answers = [
      await anonymous.get('/api/v1/me'),
      await anonymous.get('/api/v1/nothing-here'),
      await anonymous.get('/api/v1/forms/%zz'),
      await anonymous.post('/api/v1/auth/signin', { email: 'not-an-email' }),
      await member.get('/api/v1/me'),
      await member.get('/api/v1/sessions'),
      await member.get(`/api/v1/public/forms/${'0'.repeat(36)}`),
    ];
    for (const answer of answers) {
      assert.equal(
        answer.headers.get('cache-control'),
        'no-store',
        `${String(answer.status)} ${answer.text}`,
      );
    }
  });

  it('closes the event stream with session-ended when the session ends', async () => {
    const client = await suite.member();
    const stream = await readEvents(
      `${suite.base}/api/v1/events`,
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

    const terminated = await suite.member();
    const other = new Client(suite.base);
    await other.signIn(String(terminated.user?.email));
    const ended = await readEvents(
      `${suite.base}/api/v1/events`,
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
    const anonymous = await new Client(suite.base).get('/api/v1/events');
    assert.equal(anonymous.status, 401);
  });

  it('answers errors with the envelope and the request id, never a stack', async () => {
    const client = new Client(suite.base);
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
    // The service's own id, whatever the client sent (it is logged beside it, never echoed).
    const chosen = await client.get('/health', { headers: { 'x-request-id': 'trace-123' } });
    assert.match(
      String(chosen.headers.get('x-request-id')),
      /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
    );
  });

  it('serves health, readiness, metrics, the OpenAPI document and the admin page', async () => {
    const client = new Client(suite.base);
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
      ['/api/v1/organizations/invites', 'get'],
      ['/api/v1/organizations/invites/{id}', 'delete'],
      ['/api/v1/organizations/members', 'get'],
      ['/api/v1/organizations/members/{id}', 'delete'],
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
      openapi.json.paths['/api/v1/auth/signup'].post.requestBody.content['application/json'].schema.properties
        .password.minLength,
      12,
    );
    const docs = await client.get('/docs');
    assert.equal(docs.status, 200);
    assert.match(docs.headers.get('content-security-policy') ?? '', /default-src 'none'/);
    assert.equal((await client.get('/admin')).status, 401);
    const plain = await suite.member();
    const forbidden = await plain.get('/admin');
    assert.equal(forbidden.status, 403);
    assert.equal(forbidden.json.error.code, 'FORBIDDEN');
    // Only the command line grants admin (gatehouse users grant-role): the same code, in-process.
    const admin = new Client(suite.base);
    const adminEmail = freshEmail();
    await admin.signUp(adminEmail);
    await admin.signIn(adminEmail);
    assert.equal((await admin.get('/admin')).status, 403);
    const granted = await changeServiceRole(suite.running.service.context, {
      email: adminEmail,
      role: 'admin',
      change: 'grant',
    });
    assert.equal(granted.kind, 'changed');
    assert.equal((await admin.get('/api/v1/me')).status, 401, 'the grant ended the session');
    await admin.signIn(adminEmail);
    assert.deepEqual(admin.user?.roles, ['owner', 'member', 'admin']);
    const page = await admin.get('/admin');
    assert.equal(page.status, 200);
    assert.match(page.text, /gatehouse operations/);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'/);
  });
}
