/**
 * `gatehouse doctor` against real servers started for the test: a deliberately weak server, a
 * hardened TLS + ACL server audited by a read-only auditor user, the least-privilege app user
 * auditing itself (needs-rights, not errors), a Cluster, and an unreachable port.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';

import { doctorCommand } from '../../src/cli/doctor.js';
import { AUDITOR_ACL_LINE, runDoctor, type DoctorCheck, type DoctorReport } from '../../src/doctor/doctor.js';
import { aclRule } from '../../../gatehouse/src/store/acl.js';
import { freePort, RedisServer } from '../../../gatehouse/test/harness/redis-server.js';
import { generatePki, type TestPki } from '../../../gatehouse/test/harness/tls.js';
import {
  ACL_APP,
  adminClient,
  redisCli,
  startAclServer,
  startCluster,
  startSentinelSet,
  uniquePrefix,
  type Cluster,
  type SentinelSet,
  type Standalone,
} from '../../../gatehouse/test/harness/topologies.js';

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

async function doctor(argv: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await doctorCommand(argv, env, {
    stdout: (text) => {
      stdout += text;
    },
    stderr: (text) => {
      stderr += text;
    },
  });
  return { code, stdout, stderr };
}

function check(report: DoctorReport, id: string): DoctorCheck {
  const found = report.checks.find((item) => item.id === id);
  assert.ok(found, `no check ${id} in ${report.checks.map((item) => item.id).join(', ')}`);
  return found;
}

function assertStatus(report: DoctorReport, id: string, status: DoctorCheck['status']): DoctorCheck {
  const found = check(report, id);
  assert.equal(found.status, status, `${id}: ${found.status} (${found.reason})`);
  return found;
}

function assertNoStack(text: string): void {
  assert.doesNotMatch(text, /\n\s+at [^\n]+:\d+:\d+/);
}

describe('gatehouse doctor', { timeout: 60_000 }, () => {
  describe('a deliberately weak server', () => {
    let server: RedisServer;

    before(async () => {
      server = await RedisServer.start({
        name: 'weak',
        config: ['maxmemory-policy allkeys-lru', 'protected-mode no'],
      });
      const admin = await adminClient(server.port);
      try {
        for (const name of ['a', 'b', 'c']) await admin.set(`gh:sess.v1:${name}`, 'x');
        await admin.set('gh:nonce.v1:ok', 'x', { PX: 60_000 });
      } finally {
        admin.destroy();
      }
    });

    after(async () => {
      await server.destroy();
    });

    it('fails anonymous access, default user, app user, least privilege, eviction and keys without TTL', async () => {
      const run = await doctor(['--redis-url', `redis://127.0.0.1:${String(server.port)}`, '--json']);
      assert.equal(run.code, 1, run.stderr);
      assert.equal(run.stderr, '');
      const report = JSON.parse(run.stdout) as DoctorReport;
      assert.equal(report.target, `127.0.0.1:${String(server.port)}`);
      for (const id of [
        'anonymous-access',
        'default-user',
        'app-user',
        'least-privilege',
        'maxmemory-policy',
        'keys-without-ttl',
      ]) {
        assertStatus(report, id, 'fail');
      }
      assert.match(
        check(report, 'anonymous-access').reason,
        /anyone who can reach the port can read and write/,
      );
      assert.match(check(report, 'app-user').reason, /the app should use its own ACL user/);
      const leastPrivilege = check(report, 'least-privilege').reason;
      for (const probe of [
        'FLUSHALL',
        'CONFIG SET',
        'DEBUG SLEEP 0',
        'KEYS *',
        'MODULE LIST',
        'GET on a key outside gh:*',
      ]) {
        assert.ok(leastPrivilege.includes(probe), `${probe} not named in: ${leastPrivilege}`);
      }
      assert.equal(
        check(report, 'maxmemory-policy').reason,
        'allkeys-lru: evicts locks, rate limits, nonces and sessions',
      );
      const ttl = check(report, 'keys-without-ttl').reason;
      assert.match(ttl, /^3 of 4 keys under gh: have no TTL/);
      assert.match(ttl, /gh:sess\.v1:a \(string\)/);
      assert.doesNotMatch(ttl, /gh:nonce\.v1:ok/);
      assertStatus(report, 'tls', 'warn'); // plaintext, but loopback
      assertStatus(report, 'protected-mode', 'warn'); // off, but bound to loopback
      assertStatus(report, 'version', 'pass');
      assertStatus(report, 'cluster', 'pass');
      for (const item of report.checks) {
        if (item.status !== 'pass') assert.ok(item.fix, `${item.id} has no fix`);
      }
      assert.deepEqual(report.summary, {
        pass: report.checks.filter((item) => item.status === 'pass').length,
        warn: report.checks.filter((item) => item.status === 'warn').length,
        fail: report.checks.filter((item) => item.status === 'fail').length,
        skipped: report.checks.filter((item) => item.status === 'needs-rights').length,
      });
    });

    it('prints one line per check with its fix, then a summary', async () => {
      const run = await doctor([], { REDIS_ADDR: `127.0.0.1:${String(server.port)}` });
      assert.equal(run.code, 1, run.stderr);
      assert.match(
        run.stdout,
        /^FAIL {2}maxmemory-policy {2}allkeys-lru: evicts locks, rate limits, nonces and sessions\n {6}fix: .*noeviction/m,
      );
      assert.match(run.stdout, /^PASS {2}version {11}Redis \d+\.\d+\.\d+/m);
      assert.match(run.stdout, /^Summary: \d+ pass, \d+ warn, [1-9]\d* fail, 0 skipped \(needs rights\)\n$/m);
    });
  });

  describe('a hardened TLS server, audited by a read-only auditor user', () => {
    let pki: TestPki;
    let server: RedisServer;
    const auditorPassword = 'auditor-secret-for-tests';

    before(async () => {
      pki = generatePki();
      server = await RedisServer.start({
        name: 'hardened',
        tls: { certFile: pki.serverCertFile, keyFile: pki.serverKeyFile, caFile: pki.caFile },
        config: [
          'user default off',
          `user gatehouse on >app-secret-for-tests ${aclRule('gh')}`,
          AUDITOR_ACL_LINE.replace('>PASSWORD', `>${auditorPassword}`),
          'user admin on >admin-secret-for-tests ~* &* +@all',
          'maxmemory-policy noeviction',
          'maxmemory 256mb',
          'appendonly yes',
        ],
      });
    });

    after(async () => {
      await server.destroy();
      rmSync(pki.dir, { recursive: true, force: true });
    });

    const args = (appUser: string) => [
      '--redis-url',
      `rediss://gh-auditor:${auditorPassword}@127.0.0.1:${String(server.port)}`,
      '--tls-ca',
      pki.caFile,
      '--tls-cert',
      pki.clientCertFile,
      '--tls-key',
      pki.clientKeyFile,
      '--app-user',
      appUser,
    ];

    it('passes TLS, ACL, least-privilege and eviction checks; exit 0', async () => {
      const run = await doctor([...args('gatehouse'), '--json']);
      const report = JSON.parse(run.stdout) as DoctorReport;
      for (const id of [
        'version',
        'tls',
        'plaintext-port',
        'anonymous-access',
        'default-user',
        'app-user',
        'least-privilege',
        'requirepass',
        'protected-mode',
        'bind',
        'maxmemory-policy',
        'memory',
        'persistence',
        'cluster',
        'pubsub-default',
        'keys-without-ttl',
      ]) {
        assertStatus(report, id, 'pass');
      }
      assert.match(
        check(report, 'tls').reason,
        /^TLSv1\.[23], certificate for localhost verified against the configured CA/,
      );
      assert.match(check(report, 'app-user').reason, /'gatehouse' \(audited as 'gh-auditor'\)/);
      assertStatus(report, 'replication', 'warn'); // a single server: genuinely worth a warning
      assert.equal(report.summary.fail, 0);
      assert.equal(report.summary.skipped, 0);
      assert.equal(run.code, 0, run.stdout);
      assert.ok(!run.stdout.includes(auditorPassword));
    });

    it('fails least privilege for a user that may do everything, naming each command', async () => {
      const run = await doctor([...args('admin'), '--json']);
      assert.equal(run.code, 1);
      const report = JSON.parse(run.stdout) as DoctorReport;
      const found = assertStatus(report, 'least-privilege', 'fail');
      assert.match(
        found.reason,
        /^ACL user 'admin' may run FLUSHALL, CONFIG SET, DEBUG SLEEP 0, KEYS \*, MODULE LIST/,
      );
      assert.match(found.fix ?? '', /ACL SETUSER admin resetkeys ~gh:\*/);
      assertStatus(report, 'app-user', 'pass');
    });

    it('fails for an app user that does not exist', async () => {
      const report = JSON.parse((await doctor([...args('nobody'), '--json'])).stdout) as DoctorReport;
      assert.match(assertStatus(report, 'app-user', 'fail').reason, /no ACL user 'nobody'/);
      assertStatus(report, 'least-privilege', 'fail');
    });
    it('warns about a plaintext port open beside TLS (loopback only)', async () => {
      const plainPort = await freePort();
      const leaky = await RedisServer.start({
        name: 'leaky-tls',
        tls: { certFile: pki.serverCertFile, keyFile: pki.serverKeyFile, caFile: pki.caFile },
        config: [`port ${String(plainPort)}`],
      });
      try {
        const report = await runDoctor({
          connection: {
            topology: 'standalone',
            host: '127.0.0.1',
            port: leaky.port,
            tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey },
          },
          timeoutMs: 1000,
        });
        assertStatus(report, 'tls', 'pass');
        assert.match(
          assertStatus(report, 'plaintext-port', 'warn').reason,
          new RegExp(`plaintext port ${String(plainPort)} is open beside TLS \\(bind 127\\.0\\.0\\.1\\)`),
        );
      } finally {
        await leaky.destroy();
      }
    });
  });

  describe('the least-privilege app user auditing itself', () => {
    let redis: Standalone;
    let prefix: string;

    before(async () => {
      prefix = uniquePrefix();
      redis = await startAclServer(prefix);
    });

    after(async () => {
      await redis.destroy();
    });

    it('reports needs-rights with the auditor ACL line, never an error', async () => {
      const report = await runDoctor({ connection: redis.connection, keyPrefix: prefix, timeoutMs: 1000 });
      const needsRights = [
        'default-user',
        'least-privilege',
        'requirepass',
        'protected-mode',
        'bind',
        'maxmemory-policy',
        'memory',
        'persistence',
        'replication',
        'pubsub-default',
        'keys-without-ttl',
      ];
      for (const id of needsRights) {
        const found = assertStatus(report, id, 'needs-rights');
        assert.match(found.reason, /^not audited: the ACL user may not run [A-Z]+/);
        assert.ok(found.fix?.includes(AUDITOR_ACL_LINE), `${id}: ${found.fix ?? ''}`);
      }
      assert.match(check(report, 'least-privilege').reason, /ACL DRYRUN/);
      assert.match(check(report, 'maxmemory-policy').reason, /may not run CONFIG GET or INFO \(NOPERM\)/);
      assert.match(check(report, 'default-user').reason, /may not run ACL GETUSER or ACL LIST \(NOPERM\)/);
      // HELLO and the connection settings answer these without extra rights.
      assertStatus(report, 'version', 'pass');
      assertStatus(report, 'anonymous-access', 'pass');
      assert.match(
        assertStatus(report, 'app-user', 'pass').reason,
        /'gatehouse'.*ACL WHOAMI is not permitted/,
      );
      assert.equal(report.summary.skipped, needsRights.length);
    });

    it('takes the target from the service environment; exit 0 when nothing fails', async () => {
      const run = await doctor([], {
        REDIS_URL: `redis://${ACL_APP.username}:${ACL_APP.password}@127.0.0.1:${String(redis.server.port)}`,
        REDIS_KEY_PREFIX: prefix,
      });
      assert.equal(run.code, 0, run.stdout + run.stderr);
      assert.match(
        run.stdout,
        /^SKIP {2}maxmemory-policy {2}not audited: the ACL user may not run CONFIG GET or INFO/m,
      );
      assert.ok(run.stdout.includes(`fix: run the doctor as a read-only auditor ACL user`));
      assert.ok(run.stdout.includes(AUDITOR_ACL_LINE));
      assert.ok(!run.stdout.includes(ACL_APP.password) && !run.stderr.includes(ACL_APP.password));
    });
  });

  describe('a Cluster', () => {
    let cluster: Cluster;

    before(async () => {
      cluster = await startCluster();
    });

    after(async () => {
      await cluster.destroy();
    });

    it('audits every primary and names a setting that differs', async () => {
      const first = await runDoctor({ connection: cluster.connection, timeoutMs: 1000 });
      const primaries = await cluster.primaryPorts();
      assert.equal(primaries.length, 3);
      assert.match(assertStatus(first, 'cluster', 'pass').reason, /cluster_state ok on 3 primaries/);
      assertStatus(first, 'replication', 'pass');

      const odd = primaries[1] ?? 0;
      await redisCli(odd, ['config', 'set', 'maxmemory-policy', 'allkeys-lru']);
      const second = await runDoctor({ connection: cluster.connection, timeoutMs: 1000 });
      const found = assertStatus(second, 'cluster', 'fail');
      assert.match(
        found.reason,
        new RegExp(`maxmemory-policy differs: .*allkeys-lru on 127\\.0\\.0\\.1:${String(odd)}`),
      );
      const policy = assertStatus(second, 'maxmemory-policy', 'fail');
      assert.match(policy.reason, new RegExp(`127\\.0\\.0\\.1:${String(odd)}: allkeys-lru: evicts`));
    });
  });

  describe('Sentinel', () => {
    let set: SentinelSet;

    before(async () => {
      set = await startSentinelSet();
    });

    after(async () => {
      await set.destroy();
    });

    it('audits the primary the Sentinels name, and says the Sentinels were not audited in depth', async () => {
      const report = await runDoctor({ connection: set.connection, timeoutMs: 1000 });
      assert.match(report.target, /^gh-primary via /);
      assertStatus(report, 'replication', 'pass'); // the primary, with its replica
      assertStatus(report, 'anonymous-access', 'fail');
      const sentinel = assertStatus(report, 'sentinel', 'warn');
      assert.match(
        sentinel.reason,
        new RegExp(`^primary 127\\.0\\.0\\.1:${String(set.primary.port)} named by 3 of 3 Sentinels`),
      );
      assert.match(sentinel.reason, /not audited in depth/);
    });
  });

  describe('errors', () => {
    it('exits 2 within the timeout for an unreachable server, without a stack trace or password', async () => {
      const port = await freePort();
      const started = Date.now();
      const run = await doctor([
        '--redis-url',
        `redis://u:hunter2@127.0.0.1:${String(port)}`,
        '--timeout',
        '1000',
      ]);
      assert.ok(Date.now() - started < 3000, `took ${String(Date.now() - started)} ms`);
      assert.equal(run.code, 2);
      assert.equal(run.stdout, '');
      assert.match(
        run.stderr,
        new RegExp(`^gatehouse doctor: cannot connect to Redis at 127\\.0\\.0\\.1:${String(port)}: `),
      );
      assertNoStack(run.stderr);
      assert.ok(!run.stderr.includes('hunter2'));
    });

    it('exits 2 within the timeout for a server that accepts connections but never answers', async () => {
      const stalled = await RedisServer.start({ name: 'stalled' });
      stalled.pause();
      try {
        const started = Date.now();
        const run = await doctor([
          '--redis-url',
          `redis://127.0.0.1:${String(stalled.port)}`,
          '--timeout',
          '500',
        ]);
        assert.ok(Date.now() - started < 2500, `took ${String(Date.now() - started)} ms`);
        assert.equal(run.code, 2);
        assert.match(
          run.stderr,
          /^gatehouse doctor: cannot (connect to|talk to) Redis at 127\.0\.0\.1:\d+: /,
        );
        assertNoStack(run.stderr);
      } finally {
        await stalled.destroy();
      }
    });

    it('exits 2 when no Redis is configured, and on usage errors', async () => {
      const memory = await doctor([], {});
      assert.equal(memory.code, 2);
      assert.match(memory.stderr, /no Redis is configured/);
      const unknown = await doctor(['--bogus']);
      assert.equal(unknown.code, 2);
      assert.match(unknown.stderr, /Usage: gatehouse doctor/);
      const badUrl = await doctor(['--redis-url', 'http://u:hunter2@example.com']);
      assert.equal(badUrl.code, 2);
      assert.ok(!badUrl.stderr.includes('hunter2'), badUrl.stderr);
      const help = await doctor(['--help']);
      assert.equal(help.code, 0);
      assert.match(help.stdout, /--redis-url/);
    });
  });
});
