/**
 * The `gatehouse` command as an operator meets it: start-up refuses bad configuration with a
 * message naming the variable; `serve` runs the service on the embedded defaults or a real
 * Redis, starts while Redis is down, and drains on SIGTERM.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { createGatehouse } from 'gatehouse';
import {
  startStandalone,
  uniquePrefix,
  type Standalone,
} from '../../../gatehouse/test/harness/topologies.js';
import { runProgram } from '../helpers/command-outcome.js';
import { spawnService } from '../helpers/service-process.js';

function serve(env: Record<string, string>) {
  return spawnService(env);
}

/**
 * The server's output as log records, asserting that every line is one JSON record of the one
 * shape: pino's numeric level, epoch-millisecond time, pid, hostname and msg.
 */
function logRecords(output: string): Record<string, unknown>[] {
  return output
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      const record = JSON.parse(line) as Record<string, unknown>;
      assert.equal(typeof record.level, 'number', line);
      assert.equal(typeof record.time, 'number', line);
      assert.equal(typeof record.pid, 'number', line);
      assert.equal(typeof record.hostname, 'string', line);
      assert.equal(typeof record.msg, 'string', line);
      return record;
    });
}

describe('gatehouse CLI', { timeout: 180_000 }, () => {
  let redis: Standalone;

  before(async () => {
    redis = await startStandalone();
  });

  after(async () => {
    await redis.destroy();
  });

  it('serve refuses bad configuration, naming each variable, value and expectation', async () => {
    const { code, stderr, stdout } = await runProgram(['serve'], {
      SESSION_IDLE_TIMEOUT: '30x',
      PORT: 'eighty',
      SECRET_KEYS: 'tooshort',
    });
    assert.equal(code, 1);
    // One fatal log record, in the shape of every other line the server writes; nothing starts.
    const records = logRecords(stdout);
    assert.equal(records.length, 1, stdout);
    const [refusal] = records as [Record<string, unknown>];
    assert.equal(refusal.level, 60);
    const message = String(refusal.msg);
    assert.match(message, /SESSION_IDLE_TIMEOUT="30x": expected an integer followed by ms, s, m, h or d/);
    assert.match(message, /PORT="eighty": expected an integer from 0 to 65535/);
    assert.match(message, /SECRET_KEYS=\(redacted, 8 characters\)/);
    assert.ok(!stdout.includes('tooshort'), 'secrets are not echoed');
    assert.equal(stderr, '');
  });

  it('serve refuses production without its guards', async () => {
    const { code, stdout } = await runProgram(['serve'], { NODE_ENV: 'production' });
    assert.equal(code, 1);
    const message = String(logRecords(stdout)[0]?.msg);
    assert.match(message, /SECRET_KEYS=\(unset\): required when NODE_ENV=production/);
    assert.match(message, /needs Redis/);
  });

  it('serve runs the service on the embedded defaults, then drains and stops on SIGTERM', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'gh-cli-'));
    try {
      const service = await serve({ DATA_DIR: dataDir });
      assert.match(service.output(), /MEMORY STORE/);
      assert.match(service.output(), /generated a development key/);
      assert.equal(statSync(join(dataDir, 'secret-keys')).mode & 0o777, 0o600);
      const health = (await (await fetch(`${service.base}/health`)).json()) as {
        status: string;
        redis: unknown;
      };
      assert.equal(health.status, 'healthy');
      assert.deepEqual(health.redis, { status: 'disabled', mode: 'memory' });
      // A live event stream is in flight: SIGTERM closes it, then the process exits by itself.
      const email = `cli-${String(process.pid)}@clinic.example`;
      const password = 'correct horse battery staple';
      const post = (path: string, body: unknown) =>
        fetch(`${service.base}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
      assert.equal((await post('/api/v1/auth/signup', { email, password })).status, 201);
      const signin = (await (await post('/api/v1/auth/signin', { email, password })).json()) as {
        data: { sessionToken: string };
      };
      const stream = await fetch(`${service.base}/api/v1/events`, {
        headers: { authorization: `Bearer ${signin.data.sessionToken}` },
      });
      assert.equal(stream.status, 200);
      const body = stream.text();
      service.child.kill('SIGTERM');
      assert.match(await body, /event: closing/);
      assert.equal(await service.exited, 0);
      assert.match(service.output(), /"msg":"stopped"/);
      // Start-up, Fastify's request lines and shutdown: one shape, one time format.
      const records = logRecords(service.output());
      assert.ok(records.some((record) => record.msg === 'configuration accepted'));
      assert.ok(records.some((record) => record.msg === 'request completed'));
      // The second start reads the same key: sessions survive a restart.
      const again = await serve({ DATA_DIR: dataDir });
      assert.match(again.output(), /using the development key/);
      again.child.kill('SIGTERM');
      assert.equal(await again.exited, 0);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('serve connects to Redis from REDIS_ADDR', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'gh-cli-'));
    try {
      const service = await serve({
        DATA_DIR: dataDir,
        REDIS_ADDR: `127.0.0.1:${String(redis.server.port)}`,
      });
      const health = (await (await fetch(`${service.base}/health`)).json()) as {
        status: string;
        redis: { status: string; mode: string };
      };
      assert.equal(health.status, 'healthy');
      assert.equal(health.redis.status, 'up');
      assert.equal(health.redis.mode, 'standalone');
      assert.equal((await fetch(`${service.base}/ready`)).status, 200);
      service.child.kill('SIGTERM');
      assert.equal(await service.exited, 0);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('doctor and acl-rule need only Redis: they load the Redis client and nothing of the service', async () => {
    const recorder = new URL('programs/record-modules.mjs', import.meta.url).pathname;
    const dir = mkdtempSync(join(tmpdir(), 'gh-cli-modules-'));
    try {
      for (const args of [
        ['doctor', '--redis-url', `redis://127.0.0.1:${String(redis.server.port)}`, '--json'],
        ['acl-rule'],
      ]) {
        const log = join(dir, `${args[0] ?? ''}.log`);
        // No DATABASE_URL, no SECRET_KEYS, no DATA_DIR: nothing but a Redis address.
        const { code, stderr } = await runProgram(args, { MODULE_LOG: log }, ['--import', recorder]);
        assert.ok(code === 0 || code === 1, `${args.join(' ')} ran (exit ${String(code)}): ${stderr}`);
        const loaded = readFileSync(log, 'utf8').split('\n');
        if (args[0] === 'doctor') assert.ok(loaded.some((url) => url.includes('/@redis/client/')));
        const service = loaded.filter((url) =>
          /\/node_modules\/(fastify|@fastify|@electric-sql|@node-rs|pdf-lib|jose|pg|prom-client|pino)\/|\/server\/src\/service\//.test(
            url,
          ),
        );
        assert.deepEqual(service, [], `${args.join(' ')} loads none of the service`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('acl-rule prints the least-privilege rule for a prefix', async () => {
    const { code, stdout } = await runProgram(['acl-rule', '--prefix', 'myapp']);
    assert.equal(code, 0);
    assert.match(stdout, /^resetkeys ~myapp:\* resetchannels &myapp:\* -@all .*\+evalsha/);
  });

  it('refuses a prefix that would widen the ACL rule, and unknown flags, without a stack trace', async () => {
    const wide = await runProgram(['acl-rule', '--prefix', '*']);
    assert.equal(wide.code, 1);
    assert.match(wide.stderr, /--prefix must be/);
    const flag = await runProgram(['serve', '--verbose']);
    assert.equal(flag.code, 1);
    assert.match(flag.stderr, /Unknown option '--verbose'/);
    assert.doesNotMatch(flag.stderr, /\n\s+at /);
  });

  it('serve starts while Redis does not answer, and says so: /ready 503 at once, /health degraded', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'gh-cli-'));
    try {
      const service = await serve({ DATA_DIR: dataDir, REDIS_ADDR: '127.0.0.1:1' });
      const started = Date.now();
      assert.equal((await fetch(`${service.base}/ready`)).status, 503);
      assert.ok(Date.now() - started < 1000, 'within a second');
      const health = (await (await fetch(`${service.base}/health`)).json()) as { status: string };
      assert.equal(health.status, 'degraded');
      service.child.kill('SIGTERM');
      assert.equal(await service.exited, 0);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it("sessions lists and ends a user's sessions from the command line", async () => {
    const secretKeys = randomBytes(32).toString('hex');
    const prefix = uniquePrefix();
    const gh = await createGatehouse({
      redis: `redis://127.0.0.1:${String(redis.server.port)}`,
      secretKeys: [secretKeys],
      origin: 'http://localhost',
      keyPrefix: prefix,
    });
    try {
      const userId = 'user-cli-1';
      const first = await gh.sessions.create({ userId });
      const second = await gh.sessions.create({ userId });
      const env = {
        REDIS_URL: `redis://127.0.0.1:${String(redis.server.port)}`,
        REDIS_KEY_PREFIX: prefix,
        SECRET_KEYS: secretKeys,
        SESSION_DURABLE: 'false',
      };
      const listed = await runProgram(['sessions', 'list', '--user', userId], env);
      assert.equal(listed.code, 0, listed.stderr);
      assert.ok(
        listed.stdout.includes(first.session.handle) && listed.stdout.includes(second.session.handle),
      );
      assert.ok(!listed.stdout.includes(first.token), 'never a token');
      const revoked = await runProgram(['sessions', 'revoke', first.session.handle], env);
      assert.equal(revoked.code, 0, revoked.stderr);
      assert.equal(await gh.sessions.validate(first.token), null);
      assert.ok(await gh.sessions.validate(second.token));
      const all = await runProgram(['sessions', 'revoke-all', '--user', userId], env);
      assert.equal(all.code, 0, all.stderr);
      assert.match(all.stdout, /1/);
      assert.equal(await gh.sessions.validate(second.token), null);
      const help = await runProgram(['sessions', '--help']);
      assert.equal(help.code, 0);
      assert.match(help.stdout, /revoke-all --user/);
    } finally {
      await gh.close();
    }
  });

  it('doctor audits a Redis from the command line: a default, unprotected server fails', async () => {
    const report = await runProgram([
      'doctor',
      '--redis-url',
      `redis://127.0.0.1:${String(redis.server.port)}`,
      '--json',
    ]);
    assert.equal(report.code, 1, report.stderr);
    const parsed = JSON.parse(report.stdout) as { checks: Array<{ id: string; status: string }> };
    const status = new Map(parsed.checks.map((check) => [check.id, check.status]));
    assert.equal(status.get('anonymous-access'), 'fail');
    assert.equal(status.get('default-user'), 'fail');
    const human = await runProgram(['doctor'], { REDIS_ADDR: `127.0.0.1:${String(redis.server.port)}` });
    assert.equal(human.code, 1);
    assert.match(human.stdout, /FAIL\s+anonymous-access/);
    const help = await runProgram(['doctor', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--redis-url/);
  });

  it('answers --help and refuses unknown commands', async () => {
    const help = await runProgram(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage: gatehouse <command>/);
    const unknown = await runProgram(['launch']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /unknown command "launch"/);
  });
});
