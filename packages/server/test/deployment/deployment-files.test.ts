/**
 * The deployment files (Dockerfile, .dockerignore, docker-compose.yml, docs/redis/*,
 * docs/deployment.md) checked against the code they describe, so they cannot drift from it: the
 * ACL file carries exactly `aclRule('gh')`, every variable the compose file sets is one the
 * configuration knows, the image runs what `npm start` runs. shipped-redis.test.ts then runs the
 * shipped Redis settings on a real redis-server.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { loadConfig } from '../../src/config.js';
import { ConfigError } from 'gatehouse';
import { aclRule } from '../../../gatehouse/src/store/acl.js';
import {
  aclLines,
  args,
  compose,
  COMPOSE_INPUTS,
  confDirectives,
  dockerStages,
  gatehouseEnvironment,
  PLACEHOLDERS,
  read,
  root,
  text,
  userLine,
} from './shipped-files.js';

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
    // options and sources (the library's src/lua included: scripts/generate-lua.mjs turns it into
    // a module of the library's dist/, which packages/gatehouse/test/package/package.test.ts checks).
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
    const composeOnly = new Set(['GATEHOUSE_REDIS_PASSWORD', 'GATEHOUSE_AUDITOR_PASSWORD']);
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
