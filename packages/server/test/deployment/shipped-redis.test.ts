/**
 * The shipped Redis settings, for real: a redis-server runs the configuration fragment and the ACL
 * file of docs/redis (docs/redis/redis-gatehouse.conf, docs/redis/users.acl; only file paths and
 * the port swapped) over TLS, and gatehouse's user may do its work there and nothing more; and
 * docker-compose.yml's own redis command and health check run here, with the container's paths
 * made local. No Docker needed.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { loadConfig } from '../../src/config.js';
import { RedisStore } from '../../../gatehouse/src/store/redis/store.js';
import { freePort, RedisServer } from '../../../gatehouse/test/harness/redis-server.js';
import { generatePki, type TestPki } from '../../../gatehouse/test/harness/tls.js';
import { adminClient, type AdminClient } from '../../../gatehouse/test/harness/topologies.js';
import { compose, confDirectives, PLACEHOLDERS, read, root } from './shipped-files.js';

/** Rejects when `promise` has not settled within `ms`: no call in this file may hang the run. */
async function bounded<T>(what: string, promise: Promise<T>, ms = 5000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`${what}: no answer within ${String(ms)} ms`));
    }, ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// --- The shipped Redis settings, for real --------------------------------------------------

describe('a real redis-server on the shipped conf fragment and ACL file', { timeout: 60_000 }, () => {
  const passwords = {
    gatehouse: randomBytes(24).toString('hex'),
    'gh-auditor': randomBytes(24).toString('hex'),
  };
  let pki: TestPki;
  let aclDir: string;
  let server: RedisServer;
  const clients: AdminClient[] = [];

  const connect = async (username: keyof typeof passwords) => {
    const client = await bounded(
      `connect as ${username}`,
      adminClient(server.port, { username, password: passwords[username], pki }),
    );
    clients.push(client);
    return client;
  };

  before(async () => {
    pki = generatePki();
    aclDir = mkdtempSync(join(tmpdir(), 'gh-test-deploy-acl-'));
    const aclFile = join(aclDir, 'users.acl');
    let acl = read('docs/redis/users.acl');
    for (const [user, placeholder] of Object.entries(PLACEHOLDERS)) {
      const hash = createHash('sha256')
        .update(passwords[user as keyof typeof passwords])
        .digest('hex');
      acl = acl.replace(placeholder, `#${hash}`);
    }
    writeFileSync(aclFile, acl);
    // Every line of the fragment as shipped, but the TLS port and file paths, which the harness
    // sets to its free port and generated PKI, and the ACL file, which now has real hashes.
    const config = confDirectives()
      .filter((line) => !/^(tls-port|tls-cert-file|tls-key-file|tls-ca-cert-file) /.test(line))
      .map((line) => (line.startsWith('aclfile ') ? `aclfile ${aclFile}` : line));
    server = await RedisServer.start({
      name: 'deploy',
      config,
      tls: { certFile: pki.serverCertFile, keyFile: pki.serverKeyFile, caFile: pki.caFile },
    });
  });

  after(async () => {
    for (const client of clients) client.destroy();
    await server.destroy();
    rmSync(aclDir, { recursive: true, force: true });
    rmSync(pki.dir, { recursive: true, force: true });
  });

  it('runs with noeviction, AOF, TLS only and the default user off', async () => {
    const auditor = await connect('gh-auditor');
    const get = async (name: string) => (await bounded(`CONFIG GET ${name}`, auditor.configGet(name)))[name];
    assert.equal(await get('maxmemory-policy'), 'noeviction');
    assert.equal(await get('appendonly'), 'yes');
    assert.equal(await get('port'), '0');
    assert.equal(await get('tls-port'), String(server.port));
    assert.notEqual(await get('maxmemory'), '0');
    const defaultUser = await bounded('ACL GETUSER default', auditor.aclGetUser('default'));
    assert.ok(defaultUser?.flags.includes('off'));
    assert.equal(await bounded('ACL WHOAMI', auditor.aclWhoAmI()), 'gh-auditor');
  });

  it('lets the app user ping and use keys under gh:*, and nothing else', async () => {
    const app = await connect('gatehouse');
    assert.equal(await bounded('PING', app.ping()), 'PONG');
    assert.equal(await bounded('SET', app.set('gh:deploy-test', 'ok', { PX: 10_000 })), 'OK');
    assert.equal(await bounded('GET', app.get('gh:deploy-test')), 'ok');
    await assert.rejects(bounded('FLUSHALL', app.flushAll()), /NOPERM/);
    await assert.rejects(bounded('GET outside gh:*', app.get('other:key')), /NOPERM/);
    await assert.rejects(bounded('SET outside gh:*', app.set('other:key', 'x')), /NOPERM/);
    await assert.rejects(bounded('PUBLISH outside gh:*', app.publish('other-channel', 'x')), /NOPERM/);
    await assert.rejects(bounded('CONFIG GET', app.configGet('maxmemory-policy')), /NOPERM/);
    await assert.rejects(bounded('KEYS', app.keys('*')), /NOPERM/);
  });

  it('lets the auditor read settings and key metadata, never values, and write nothing', async () => {
    const auditor = await connect('gh-auditor');
    assert.match(await bounded('INFO', auditor.info('memory')), /maxmemory_policy:noeviction/);
    const scan = await bounded('SCAN', auditor.scan('0', { MATCH: 'gh:*', COUNT: 100 }));
    assert.ok(Array.isArray(scan.keys));
    await assert.rejects(bounded('GET', auditor.get('gh:deploy-test')), /NOPERM/);
    await assert.rejects(bounded('SET', auditor.set('gh:x', 'y')), /NOPERM/);
    await assert.rejects(bounded('FLUSHALL', auditor.flushAll()), /NOPERM/);
  });

  it('serves gatehouse configured as in production: rediss://, CA and client certificate, the app user', async () => {
    const config = loadConfig({
      NODE_ENV: 'production',
      REDIS_URL: `rediss://gatehouse:${passwords.gatehouse}@127.0.0.1:${String(server.port)}`,
      REDIS_TLS_CA: pki.caFile,
      REDIS_TLS_CERT: pki.clientCertFile,
      REDIS_TLS_KEY: pki.clientKeyFile,
      SECRET_KEYS: randomBytes(32).toString('hex'),
    });
    assert.equal(config.store.kind, 'redis');
    const store = new RedisStore({ connection: config.store.connection, keyPrefix: config.keyPrefix });
    try {
      await bounded('waitUntilReady', store.waitUntilReady(5000), 6000);
      const probe = await bounded('probeReadWrite', store.probeReadWrite('deploy', 'ok', 10_000));
      assert.equal(typeof probe.serverTimeMs, 'number');
      const health = await bounded('health', store.health());
      assert.equal(health.status, 'up');
      assert.equal(health.nodes[0]?.info, 'not-permitted', 'INFO is not in the app rule');
    } finally {
      await bounded('close', store.close());
    }
  });
});

// --- The compose file's redis command, run here --------------------------------------------

describe("docker-compose.yml's redis command, run with local paths", { timeout: 60_000 }, () => {
  const env = {
    ...process.env,
    GATEHOUSE_REDIS_PASSWORD: randomBytes(24).toString('hex'),
    GATEHOUSE_AUDITOR_PASSWORD: randomBytes(24).toString('hex'),
  };
  let dir: string;
  let port: number;
  let child: ChildProcess | undefined;
  const clients: AdminClient[] = [];

  /** A compose string as the container's shell gets it, with the container's paths made local. */
  const local = (text: string) =>
    text
      .replaceAll('$$', '$')
      .replaceAll(
        '/usr/local/etc/redis/redis.conf',
        new URL('docs/redis/redis-gatehouse.conf', root).pathname,
      )
      .replaceAll('/usr/local/etc/redis/users.acl', new URL('docs/redis/users.acl', root).pathname)
      .replaceAll('/tmp/users.acl', join(dir, 'users.acl'))
      .replace('--dir /data', `--dir ${dir} --logfile ${join(dir, 'redis.log')}`)
      .replace('--port 6379', `--port ${String(port)}`)
      .replace('redis-cli ', `redis-cli -p ${String(port)} `);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gh-test-deploy-compose-'));
    port = await freePort();
    const redis = compose().services.redis;
    const command = redis?.command;
    assert.ok(Array.isArray(command) && command[0] === 'sh' && command[1] === '-c');
    const started = spawn('sh', ['-c', local(command[2] ?? '')], { env, stdio: 'ignore' });
    child = started;
    const log = () => {
      try {
        return readFileSync(join(dir, 'redis.log'), 'utf8');
      } catch {
        return '';
      }
    };
    const deadline = Date.now() + 15_000;
    while (!log().includes('Ready to accept connections')) {
      if (started.exitCode !== null || Date.now() > deadline) {
        throw new Error(
          `the compose redis command did not start:\n${log().split('\n').slice(-10).join('\n')}`,
        );
      }
      await sleep(25);
    }
  });

  after(() => {
    for (const client of clients) client.destroy();
    child?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts Redis on the shipped files, and its health check passes (and fails with a wrong password)', () => {
    const test = compose().services.redis?.healthcheck?.test;
    assert.ok(Array.isArray(test) && test[0] === 'CMD-SHELL');
    const check = (password: string) =>
      spawnSync('sh', ['-c', local(test[1] ?? '')], {
        env: { ...env, GATEHOUSE_AUDITOR_PASSWORD: password },
        stdio: 'ignore',
        timeout: 5000,
      }).status;
    assert.equal(check(env.GATEHOUSE_AUDITOR_PASSWORD), 0);
    assert.notEqual(check('not-the-password'), 0);
  });

  it('lets gatehouse in with the password of its REDIS_URL, confined to gh:*', async () => {
    const client = await bounded(
      'connect as gatehouse',
      adminClient(port, { username: 'gatehouse', password: env.GATEHOUSE_REDIS_PASSWORD }),
    );
    clients.push(client);
    assert.equal(await bounded('SET', client.set('gh:compose-test', 'ok', { PX: 10_000 })), 'OK');
    await assert.rejects(bounded('GET outside gh:*', client.get('other:key')), /NOPERM/);
    const config = await bounded(
      'CONFIG GET as auditor',
      auditorConfig(port, env.GATEHOUSE_AUDITOR_PASSWORD),
    );
    assert.equal(config['maxmemory-policy'], 'noeviction');
    assert.equal(config.appendonly, 'yes');
  });

  async function auditorConfig(serverPort: number, password: string): Promise<Record<string, string>> {
    const auditor = await adminClient(serverPort, { username: 'gh-auditor', password });
    clients.push(auditor);
    return {
      ...(await auditor.configGet('maxmemory-policy')),
      ...(await auditor.configGet('appendonly')),
    };
  }
});
