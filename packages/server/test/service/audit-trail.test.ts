/**
 * What the running service writes to its audit trail, over real HTTP, on PostgreSQL and on PGlite:
 * a flood of 429s gives one row per policy, subject and minute with the count (a keyed hash of
 * the address, never the address); an expired session presented again and again is audited once;
 * request ids are the service's own (a client's X-Request-Id is logged beside it when
 * well-formed, never echoed nor stored); every access to a response's answers says which
 * response, which form, who, and whether the PDF was made; the running service logs audit
 * anchors; and the chain verifies afterwards.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import type { KeyRing } from 'gatehouse';
import { createServiceLogger } from '../../src/logger.js';
import { AuditLog } from '../../src/service/audit.js';
import { openDatabase, openMemoryDatabase, type Database } from '../../src/service/db.js';
import { waitFor } from '../../../gatehouse/test/harness/topologies.js';
import { Client, freshEmail } from '../helpers/client.js';
import {
  createTestDatabase,
  sharedSecretKeys,
  startService,
  type RunningService,
} from '../helpers/start-service.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface AuditTableRow {
  type: string;
  outcome: string;
  user_id: string | null;
  session_hash: string | null;
  request_id: string | null;
  details: Record<string, unknown>;
}

/** Where the service's rows are: the database it runs on, and a handle to read it. */
interface Target {
  readonly env: Record<string, string>;
  readonly database?: Database;
  /** The database, to read after the service closed. */
  readonly reader: Database;
  cleanup(): Promise<void>;
}

async function postgresTarget(): Promise<Target> {
  const created = await createTestDatabase();
  const reader = await openDatabase(created.url, '');
  return {
    env: { DATABASE_URL: created.url },
    reader,
    cleanup: async () => {
      await reader.close();
      await created.drop();
    },
  };
}

async function pgliteTarget(): Promise<Target> {
  const database = await openMemoryDatabase();
  return { env: {}, database, reader: database, cleanup: () => database.close() };
}

for (const [name, makeTarget] of [
  ['PostgreSQL', postgresTarget],
  ['PGlite', pgliteTarget],
] as const) {
  describe(`the service's audit trail on ${name}`, { timeout: 120_000 }, () => {
    let target: Target;
    let keyRing: KeyRing | undefined;
    /** Every service of these cases appends to one chain, as restarts of one deployment do. */
    const secretKeys = sharedSecretKeys();

    async function start(env: Record<string, string> = {}, logLines?: string[]): Promise<RunningService> {
      const running = await startService(
        { ...target.env, SECRET_KEYS: secretKeys, ...env },
        {
          ...(target.database ? { database: target.database } : {}),
          ...(logLines ? { auditAnchorIntervalMs: 200 } : {}),
          ...(logLines
            ? {
                logger: createServiceLogger('info', {
                  write: (line: string) => {
                    logLines.push(line);
                  },
                }),
              }
            : {}),
        },
      );
      keyRing = running.service.context.gh.keyRing;
      return running;
    }

    async function rows(type: string): Promise<AuditTableRow[]> {
      const { rows: found } = await target.reader.query(
        'SELECT type, outcome, user_id, session_hash, request_id, details FROM audit_log WHERE type = $1 ORDER BY id',
        [type],
      );
      return found as AuditTableRow[];
    }

    before(async () => {
      target = await makeTarget();
    });

    after(async () => {
      await target.cleanup();
    });

    it('writes a flood of 429s as one row per policy, subject and minute, holding the count', async () => {
      const running = await start({ RATE_LIMIT_API: '2/1m' });
      const attacker = new Client(running.base);
      const refusedIds: string[] = [];
      for (let i = 0; i < 40; i += 1) {
        // A new email each time: the address's allowance runs out, no account's does.
        const answer = await attacker.post('/api/v1/auth/signin', {
          email: freshEmail(),
          password: 'not the password',
        });
        if (answer.status === 429) {
          assert.match(String(answer.headers.get('ratelimit')), /^"auth";/);
          refusedIds.push(String(answer.headers.get('x-request-id')));
        }
      }
      assert.ok(refusedIds.length >= 30, `${String(refusedIds.length)} refusals`);
      const member = new Client(running.base);
      const email = freshEmail();
      await member.signUp(email);
      await member.signIn(email);
      let userRefusals = 0;
      for (let i = 0; i < 12; i += 1) {
        const answer = await member.get('/api/v1/me');
        if (answer.status === 429) userRefusals += 1;
      }
      assert.ok(userRefusals >= 9, `${String(userRefusals)} refusals of the member`);
      await running.close(); // writes the minute under way

      const refused = await rows('rate-limit.refused');
      const byIp = refused.filter((row) => row.details.policy === 'auth');
      const byUser = refused.filter((row) => row.details.policy === 'api');
      assert.equal(byIp.length + byUser.length, refused.length, JSON.stringify(refused));
      for (const [group, count] of [
        [byIp, refusedIds.length],
        [byUser, userRefusals],
      ] as const) {
        // One row per minute (two when the flood ran across a minute's end), the counts summed.
        const minutes = group.map((row) => row.details.minuteStartMs);
        assert.ok(group.length >= 1 && group.length <= 2, JSON.stringify(group));
        assert.equal(new Set(minutes).size, group.length, 'one row per minute');
        for (const minute of minutes) assert.equal(Number(minute) % 60_000, 0);
        assert.equal(
          group.reduce((sum, row) => sum + Number(row.details.refusals), 0),
          count,
        );
        for (const row of group) assert.equal(row.outcome, 'failure');
      }
      for (const row of byIp) {
        assert.equal(row.user_id, null);
        assert.equal(row.details.subject, 'ip');
        assert.match(String(row.details.ipHash), /^[A-Za-z0-9_-]{22}$/);
        assert.ok(refusedIds.includes(String(row.request_id)), 'the id of a refusal it stands for');
      }
      assert.equal(new Set(byIp.map((row) => row.details.ipHash)).size, 1, 'one address, one subject');
      for (const row of byUser) {
        assert.equal(row.user_id, member.user?.id);
        assert.equal(row.details.subject, 'user');
        assert.equal(row.details.ipHash, undefined);
      }
      const { rows: all } = await target.reader.query('SELECT audit_log::text AS t FROM audit_log');
      const stored = JSON.stringify(all);
      assert.ok(!stored.includes(attacker.ip) && !stored.includes(member.ip), 'an address was stored');
    });

    it('audits an expired session once, however often its token comes back', async () => {
      const running = await start({ SESSION_IDLE_TIMEOUT: '1s' });
      const client = new Client(running.base);
      const email = freshEmail();
      await client.signUp(email);
      await client.signIn(email);
      assert.equal((await client.get('/api/v1/me', { as: 'session-bearer' })).status, 200);
      await sleep(1300);
      for (let i = 0; i < 6; i += 1) {
        assert.equal((await client.get('/api/v1/me', { as: 'session-bearer' })).status, 401);
        assert.equal((await client.get('/api/v1/me')).status, 401);
      }
      await running.close();
      const handle = String(client.sessionId);
      const expired = (await rows('session.expired-idle')).filter(
        (row) => row.session_hash === keyRing?.auditHash(handle),
      );
      assert.equal(expired.length, 1, JSON.stringify(expired));
    });

    it("gives every request the service's own id, logs a well-formed client id beside it, and stores neither the client's", async () => {
      const logLines: string[] = [];
      const running = await start({}, logLines);
      const client = new Client(running.base);
      const email = freshEmail();
      const clientId = 'client-chosen.4711';
      const signUp = await client.post(
        '/api/v1/auth/signup',
        { email, password: 'correct horse battery staple' },
        { as: 'anonymous', headers: { 'x-request-id': clientId } },
      );
      assert.equal(signUp.status, 201, signUp.text);
      const signUpId = String(signUp.headers.get('x-request-id'));
      assert.match(signUpId, UUID);
      const signIn = await client.post(
        '/api/v1/auth/signin',
        { email, password: 'correct horse battery staple' },
        { headers: { 'x-request-id': 'has spaces; and <markup>' } },
      );
      assert.equal(signIn.status, 200, signIn.text);
      const signInId = String(signIn.headers.get('x-request-id'));
      assert.match(signInId, UUID);
      const again = await client.get('/health', { headers: { 'x-request-id': signUpId } });
      assert.notEqual(again.headers.get('x-request-id'), signUpId, 'not even an id the service gave');
      // The running service anchors its newest row in the log (every 200 ms here, a minute by default).
      await waitFor(
        'an audit anchor',
        () => logLines.some((line) => line.includes('"msg":"audit anchor"')),
        5000,
      );
      await running.close();

      const signUpRows = (await rows('user.signup')).filter((row) => row.request_id === signUpId);
      assert.equal(signUpRows.length, 1, 'the row carries the service id');
      assert.equal((await rows('signin')).filter((row) => row.request_id === signInId).length, 1);
      const { rows: all } = await target.reader.query('SELECT audit_log::text AS t FROM audit_log');
      assert.ok(!JSON.stringify(all).includes(clientId), "the client's id was stored");

      const records = logLines.map((line) => JSON.parse(line) as Record<string, unknown>);
      const signUpLines = records.filter((record) => record.reqId === signUpId);
      assert.ok(signUpLines.length >= 2, 'the request lines');
      for (const record of signUpLines) assert.equal(record.clientRequestId, clientId);
      const signInLines = records.filter((record) => record.reqId === signInId);
      assert.ok(signInLines.length >= 2);
      for (const record of signInLines) assert.equal(record.clientRequestId, undefined);
      assert.ok(!logLines.join('\n').includes('has spaces'), 'a malformed id reached the log');
    });

    it('audits every access to answers: which response, which form, who, and whether rendered', async () => {
      const running = await start();
      const owner = new Client(running.base);
      const email = freshEmail();
      await owner.signUp(email);
      await owner.signIn(email);
      const created = await owner.post('/api/v1/forms', {
        title: 'Intake',
        fields: [{ name: 'symptoms', label: 'Symptoms', type: 'textarea' }],
      });
      assert.equal(created.status, 201, created.text);
      const formId = String(created.json.data.form.id);
      const visitor = new Client(running.base);
      const nonce = (await visitor.get(`/api/v1/public/forms/${formId}`)).json.data.nonce;
      const phi = 'persistent cough since the 3rd';
      const submitted = await visitor.post(`/api/v1/public/forms/${formId}/responses`, {
        nonce,
        answers: { symptoms: phi },
      });
      assert.equal(submitted.status, 201, submitted.text);
      const responseId = String(submitted.json.data.response.id);

      const pdf = await owner.post(`/api/v1/responses/${responseId}/pdf`);
      assert.equal(pdf.status, 200, pdf.text.slice(0, 200));
      const held = await running.service.context.gh.locks.tryAcquire(`pdf:${responseId}`, { ttl: 10_000 });
      assert.ok(held.acquired);
      const busy = await owner.post(`/api/v1/responses/${responseId}/pdf`);
      assert.equal(busy.status, 409);
      await held.release();
      const outsider = new Client(running.base);
      const outsiderEmail = freshEmail();
      await outsider.signUp(outsiderEmail);
      await outsider.signIn(outsiderEmail);
      assert.equal((await outsider.post(`/api/v1/responses/${responseId}/pdf`)).status, 404);
      await running.close();

      assert.deepEqual(
        (await rows('form.response')).filter((row) => row.details.responseId === responseId),
        [
          {
            type: 'form.response',
            outcome: 'success',
            user_id: null,
            session_hash: null,
            request_id: submitted.headers.get('x-request-id'),
            details: { responseId, formId },
          },
        ],
      );
      assert.deepEqual(
        (await rows('form.response.pdf')).filter((row) => row.details.responseId === responseId),
        [
          {
            type: 'form.response.pdf',
            outcome: 'success',
            user_id: owner.user?.id,
            session_hash: null,
            request_id: pdf.headers.get('x-request-id'),
            details: { responseId, formId, rendered: true },
          },
          {
            type: 'form.response.pdf',
            outcome: 'failure',
            user_id: owner.user?.id,
            session_hash: null,
            request_id: busy.headers.get('x-request-id'),
            details: { responseId, formId, rendered: false, reason: 'locked' },
          },
        ],
        'the outsider read no answers, so no row',
      );
      const { rows: all } = await target.reader.query('SELECT audit_log::text AS t FROM audit_log');
      assert.ok(!JSON.stringify(all).includes(phi), 'an answer reached the audit trail');
    });

    it('leaves a chain that verifies with the service keys', async () => {
      assert.ok(keyRing);
      const verification = await new AuditLog(
        target.reader,
        { info() {}, warn() {}, error() {} },
        { keyRing },
      ).verify();
      assert.equal(verification.ok, true, JSON.stringify(verification));
      const { rows: counted } = await target.reader.query('SELECT count(*)::int AS n FROM audit_log');
      assert.equal(verification.rows, (counted[0] as { n: number }).n, 'every row');
      // Some 40 refused requests and a dozen presentations of an expired token among them.
      assert.ok(verification.rows < 40, `${String(verification.rows)} rows`);
    });
  });
}
