/**
 * The deployment files (Dockerfile, .dockerignore, docker-compose.yml, docs/redis/*,
 * docs/deployment.md) checked against the code they describe, so they cannot drift from it: the
 * ACL file carries exactly `aclRule('gh')`, every variable the compose file sets is one the
 * configuration knows, the image runs what `npm start` runs. A real redis-server then runs the
 * shipped redis.conf fragment and ACL file (only file paths and the port swapped) over TLS, and
 * gatehouse's user may do its work there and nothing more; and the compose file's own redis
 * command and health check run here, with the container's paths made local. No Docker needed.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { parse } from 'yaml';

import { loadConfig } from '../src/config.js';
import { ConfigError } from 'gatehouse';
import { aclRule } from '../../gatehouse/src/store/acl.js';
import { RedisStore } from '../../gatehouse/src/store/redis.js';
import { freePort, RedisServer } from '../../gatehouse/test/harness/redis-server.js';
import { generatePki, type TestPki } from '../../gatehouse/test/harness/tls.js';
import { adminClient, type AdminClient } from '../../gatehouse/test/harness/topologies.js';

const root = new URL('../../../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');

const PLACEHOLDERS = {
  gatehouse: '#REPLACE_WITH_SHA256_OF_GATEHOUSE_PASSWORD',
  'gh-auditor': '#REPLACE_WITH_SHA256_OF_AUDITOR_PASSWORD',
} as const;

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

// --- docker-compose.yml -------------------------------------------------------------------

interface ComposeService {
  image?: string;
  build?: string | { context?: string };
  command?: string | string[];
  environment?: Record<string, string | number | boolean | null>;
  volumes?: string[];
  depends_on?: Record<string, { condition?: string }>;
  healthcheck?: { test?: string | string[] };
}

function compose(): { services: Record<string, ComposeService> } {
  return parse(read('docker-compose.yml')) as { services: Record<string, ComposeService> };
}

function text(value: string | string[] | undefined): string {
  return Array.isArray(value) ? value.join(' ') : (value ?? '');
}

/** Plausible values for the variables compose interpolates from .env. */
const COMPOSE_INPUTS: Record<string, string> = {
  GATEHOUSE_REDIS_PASSWORD: 'a'.repeat(64),
  GATEHOUSE_AUDITOR_PASSWORD: 'b'.repeat(64),
  POSTGRES_PASSWORD: 'c'.repeat(64),
  SECRET_KEYS: `${'d'.repeat(64)},${'e'.repeat(64)}`,
  GATEHOUSE_ADMIN_EMAILS: 'admin@example.com',
};

/** Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?error}`, from COMPOSE_INPUTS. */
function interpolate(value: string): string {
  return value.replace(/\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}/g, (_match, name: string) => {
    const input = COMPOSE_INPUTS[name];
    assert.ok(input !== undefined, `docker-compose.yml interpolates \${${name}}, unknown to this test`);
    return input;
  });
}

function gatehouseEnvironment(): Record<string, string> {
  const environment = compose().services.gatehouse?.environment ?? {};
  return Object.fromEntries(
    Object.entries(environment).map(([name, value]) => [name, interpolate(String(value ?? ''))]),
  );
}

describe('docker-compose.yml', () => {
  it('parses and has the gatehouse, redis and postgres services', () => {
    const { services } = compose();
    for (const name of ['gatehouse', 'redis', 'postgres']) assert.ok(services[name], `service ${name}`);
    const build = services.gatehouse?.build;
    assert.equal(
      typeof build === 'string' ? build : build?.context,
      '.',
      'gatehouse is built from the Dockerfile',
    );
    assert.match(services.redis?.image ?? '', /^redis:7(\.|$)/);
    assert.match(services.postgres?.image ?? '', /^postgres:15(\.|$)/);
  });

  it('starts gatehouse only once redis and postgres are healthy, and checks their health', () => {
    const { services } = compose();
    const dependsOn = services.gatehouse?.depends_on ?? {};
    assert.equal(dependsOn.redis?.condition, 'service_healthy');
    assert.equal(dependsOn.postgres?.condition, 'service_healthy');
    const redisCheck = text(services.redis?.healthcheck?.test);
    assert.match(redisCheck, /redis-cli --user gh-auditor\b.*\bping\b/);
    assert.match(text(services.postgres?.healthcheck?.test), /pg_isready/);
  });

  it('runs redis on the shipped conf fragment (noeviction) and ACL file', () => {
    const redis = compose().services.redis;
    const volumes = redis?.volumes ?? [];
    assert.ok(volumes.includes('./docs/redis/redis-gatehouse.conf:/usr/local/etc/redis/redis.conf:ro'));
    assert.ok(volumes.includes('./docs/redis/users.acl:/usr/local/etc/redis/users.acl:ro'));
    const command = text(redis?.command);
    assert.match(command, /redis-server \/usr\/local\/etc\/redis\/redis\.conf\b/);
    // The ACL file it loads is the mounted one with the placeholders filled in.
    assert.match(command, /\/usr\/local\/etc\/redis\/users\.acl > \/tmp\/users\.acl/);
    assert.match(command, /--aclfile \/tmp\/users\.acl/);
    for (const placeholder of Object.values(PLACEHOLDERS)) assert.ok(command.includes(placeholder));
    // Only the network settings are swapped for the local stack: memory and persistence are the file's.
    assert.doesNotMatch(command, /maxmemory|appendonly|save /);
    assert.match(read('docs/redis/redis-gatehouse.conf'), /^maxmemory-policy noeviction$/m);
  });

  it('gives gatehouse only variables the configuration knows, with values it accepts', () => {
    const env = gatehouseEnvironment();
    const configSource = read('packages/server/src/config.ts');
    for (const name of Object.keys(env)) {
      assert.ok(configSource.includes(`'${name}'`), `${name} is read by src/config.ts`);
    }
    const config = loadConfig(env);
    assert.equal(config.store.kind, 'redis');
    assert.equal(config.production, false);
    assert.equal(config.cookieSecure, false);
    assert.equal(config.host, '0.0.0.0');
    assert.match(config.databaseUrl ?? '', /^postgres:\/\/gatehouse:.*@postgres:5432\/gatehouse$/);
    assert.equal(config.secretKeys?.length, 2);
    const connection = config.store.connection;
    assert.equal(connection.topology, 'standalone');
    assert.equal(connection.host, 'redis', 'the compose service name');
    assert.equal(connection.port, 6379);
    assert.equal(connection.username, 'gatehouse', 'the app user of docs/redis/users.acl');
    assert.equal(connection.password, COMPOSE_INPUTS.GATEHOUSE_REDIS_PASSWORD);
  });

  it('is a local stack: the same settings with NODE_ENV=production are refused (plaintext Redis)', () => {
    assert.throws(
      () => loadConfig({ ...gatehouseEnvironment(), NODE_ENV: 'production' }),
      (error: unknown) => error instanceof ConfigError && /plaintext Redis/.test(error.message),
    );
  });
});

// --- Dockerfile and .dockerignore ---------------------------------------------------------

interface Instruction {
  readonly keyword: string;
  readonly args: string;
}

/** The Dockerfile's instructions by stage (continuation lines joined, comments dropped). */
function dockerStages(): Instruction[][] {
  const joined = read('Dockerfile')
    .split('\n')
    .filter((line) => !/^\s*#/.test(line))
    .join('\n')
    .replace(/\\\n/g, ' ');
  const stages: Instruction[][] = [];
  for (const line of joined.split('\n')) {
    const match = /^\s*([A-Za-z]+)\s+(.*\S)\s*$/.exec(line);
    if (!match) continue;
    const instruction = {
      keyword: (match[1] ?? '').toUpperCase(),
      args: (match[2] ?? '').replace(/\s+/g, ' '),
    };
    if (instruction.keyword === 'FROM') stages.push([]);
    stages.at(-1)?.push(instruction);
  }
  return stages;
}

function args(stage: readonly Instruction[], keyword: string): string[] {
  return stage
    .filter((instruction) => instruction.keyword === keyword)
    .map((instruction) => instruction.args);
}

describe('Dockerfile', () => {
  it('builds both packages in a node:24-bookworm-slim stage with npm ci and npm run build', () => {
    const stages = dockerStages();
    assert.ok(stages.length >= 2, 'multi-stage');
    const build = stages[0] ?? [];
    assert.match(args(build, 'FROM')[0] ?? '', /^node:24-bookworm-slim AS build$/i);
    const runs = args(build, 'RUN');
    assert.ok(runs.includes('npm ci'));
    assert.ok(runs.includes('npm run build'));
    const copies = args(build, 'COPY');
    // What scripts/build.mjs reads: the shared compiler options, each package's manifest, build
    // options and sources (the library's src/lua included; package.test.ts checks dist/lua).
    assert.ok(copies.includes('package.json package-lock.json tsconfig.base.json ./'));
    for (const name of ['gatehouse', 'server']) {
      assert.ok(
        copies.includes(
          `packages/${name}/package.json packages/${name}/tsconfig.build.json ./packages/${name}/`,
        ),
      );
      assert.ok(copies.includes(`packages/${name}/src ./packages/${name}/src`));
    }
    assert.ok(copies.includes('scripts ./scripts'));
    const { scripts } = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
    assert.equal(scripts.build, 'node scripts/build.mjs');
  });

  it('runs what npm start runs, as the node user, in production mode, with a /ready health check', () => {
    const runtime = dockerStages().at(-1) ?? [];
    assert.match(args(runtime, 'FROM')[0] ?? '', /^node:24-bookworm-slim\b/);
    assert.ok(args(runtime, 'RUN').some((run) => run.startsWith('npm ci --omit=dev')));
    for (const name of ['gatehouse', 'server']) {
      assert.ok(args(runtime, 'COPY').includes(`packages/${name}/package.json ./packages/${name}/`));
      assert.ok(
        args(runtime, 'COPY').includes(`--from=build /app/packages/${name}/dist ./packages/${name}/dist`),
      );
    }
    assert.equal(args(runtime, 'USER').at(-1), 'node');
    assert.ok(args(runtime, 'EXPOSE').includes('3000'));
    const env = args(runtime, 'ENV').join(' ');
    assert.match(env, /\bNODE_ENV=production\b/);
    assert.match(env, /\bHOST=0\.0\.0\.0\b/);
    const healthcheck = args(runtime, 'HEALTHCHECK').join(' ');
    assert.match(healthcheck, /CMD node -e .*fetch\('http:\/\/127\.0\.0\.1:.*\/ready'\)/);

    const cmd = JSON.parse(args(runtime, 'CMD').at(-1) ?? 'null') as unknown;
    assert.deepEqual(cmd, ['node', 'packages/server/dist/cli/main.js', 'serve']);
    const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
    assert.ok(
      pkg.scripts.start?.endsWith('node packages/server/dist/cli/main.js serve'),
      'npm start runs the same entry',
    );
  });

  it('keeps node_modules, build output, data and secrets out of the build context, but not the sources', () => {
    const ignored = read('.dockerignore')
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#'));
    for (const entry of ['**/node_modules', '**/dist', 'data', '.git', '.scratch', '.test-tmp', '.env']) {
      assert.ok(ignored.includes(entry), `${entry} is ignored`);
    }
    for (const needed of [
      'scripts',
      'package.json',
      'package-lock.json',
      'tsconfig.base.json',
      'packages/gatehouse/src',
      'packages/gatehouse/package.json',
      'packages/gatehouse/tsconfig.build.json',
      'packages/server/src',
      'packages/server/package.json',
      'packages/server/tsconfig.build.json',
    ]) {
      assert.ok(
        !ignored.some(
          (entry) =>
            entry === needed ||
            needed.startsWith(`${entry}/`) ||
            needed.split('/').includes(entry.replace('**/', '')),
        ),
        `${needed} is sent`,
      );
    }
  });
});

// --- docs/redis and docs/deployment.md -----------------------------------------------------

function aclLines(): string[] {
  return read('docs/redis/users.acl')
    .split('\n')
    .filter((line) => line !== '');
}

function userLine(name: string): string {
  const line = aclLines().find((candidate) => candidate.startsWith(`user ${name} `));
  assert.ok(line, `users.acl has user ${name}`);
  return line;
}

function confDirectives(): string[] {
  return read('docs/redis/redis-gatehouse.conf')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

describe('docs/redis', () => {
  it('users.acl: gatehouse has exactly aclRule("gh"), the default user is off, the auditor reads only', () => {
    assert.equal(userLine('gatehouse'), `user gatehouse on ${PLACEHOLDERS.gatehouse} ${aclRule('gh')}`);
    assert.match(userLine('default'), /^user default off\b/);
    assert.doesNotMatch(userLine('default'), /\bon\b|nopass|\+@all/);
    const auditor = userLine('gh-auditor');
    assert.equal(
      auditor,
      `user gh-auditor on ${PLACEHOLDERS['gh-auditor']} ~* &* -@all +info +config|get +acl|whoami +acl|list ` +
        '+acl|getuser +acl|dryrun +cluster|info +cluster|nodes +scan +pttl +type +ping',
    );
    // Redis 7 ACL files have no comments and no other lines.
    assert.equal(aclLines().length, 3);
    assert.ok(aclLines().every((line) => line.startsWith('user ') && !line.includes('  ')));
  });

  it('users.acl does not load until its placeholders are replaced (no known password ships)', () => {
    // A unix socket in a directory of its own: a server that did start would listen nowhere else
    // (and be killed by the timeout).
    const dir = mkdtempSync(join(tmpdir(), 'gh-test-deploy-placeholder-'));
    try {
      const result = spawnSync(
        'redis-server',
        [
          ...['--port', '0', '--unixsocket', join(dir, 'redis.sock'), '--dir', dir],
          ...['--save', '', '--appendonly', 'no'],
          ...['--aclfile', new URL('docs/redis/users.acl', root).pathname],
        ],
        { encoding: 'utf8', timeout: 10_000 },
      );
      assert.notEqual(result.status, 0, 'redis-server refused to start');
      assert.match(result.stdout, /Aborting Redis startup because of ACL errors/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('redis-gatehouse.conf: noeviction, AOF, TLS only, the ACL file, no renamed commands', () => {
    const directives = confDirectives();
    for (const expected of [
      'maxmemory-policy noeviction',
      'appendonly yes',
      'port 0',
      'protected-mode yes',
      'acl-pubsub-default resetchannels',
      'tls-protocols "TLSv1.2 TLSv1.3"',
    ]) {
      assert.ok(directives.includes(expected), expected);
    }
    assert.ok(directives.some((line) => /^tls-port [1-9]\d*$/.test(line)));
    assert.ok(directives.some((line) => /^maxmemory \d+[kmg]?b?$/i.test(line)));
    assert.ok(directives.some((line) => /^aclfile \S+users\.acl$/.test(line)));
    for (const file of ['tls-cert-file', 'tls-key-file', 'tls-ca-cert-file']) {
      assert.ok(
        directives.some((line) => line.startsWith(`${file} `)),
        file,
      );
    }
    assert.ok(!directives.some((line) => line.startsWith('rename-command')));
  });

  it('deployment.md names every metric the service exports and only variables the configuration knows', () => {
    const guide = read('docs/deployment.md');
    const metrics = [
      ...read('packages/server/src/service/metrics.ts').matchAll(/name: '(gatehouse_[a-z_]+)'/g),
    ].map((m) => m[1] ?? '');
    assert.ok(metrics.length >= 5);
    for (const metric of metrics) assert.ok(guide.includes(metric), `${metric} is documented`);

    const configSource = read('packages/server/src/config.ts');
    const composeOnly = new Set([
      'GATEHOUSE_REDIS_PASSWORD',
      'GATEHOUSE_AUDITOR_PASSWORD',
      'GATEHOUSE_ADMIN_EMAILS',
    ]);
    const variables = new Set(
      [
        ...guide.matchAll(
          /\b((?:REDIS|SESSION|COOKIE|TRUST|TRUSTED|SECRET|DATABASE|DATA|GATEHOUSE|LOG|ADMIN)(?:_[A-Z]+)+)/g,
        ),
      ].map((m) => m[1] ?? ''),
    );
    for (const variable of variables) {
      if (composeOnly.has(variable)) continue;
      assert.ok(
        configSource.includes(`'${variable}'`),
        `${variable} in deployment.md is read by src/config.ts`,
      );
    }
  });
});

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
