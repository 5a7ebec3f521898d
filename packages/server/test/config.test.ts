import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { describeStore, loadConfig } from '../src/config.js';
import { ConfigError } from 'gatehouse';
import { parseRateLimitPolicy } from '../../gatehouse/src/rate-limit/policy.js';
import { parseDurationMs, toMs } from '../../gatehouse/src/util/duration.js';

const KEY_HEX = 'a'.repeat(64);
const KEY_B64 = Buffer.alloc(32, 7).toString('base64url');

/** The ConfigError thrown for `env`, with its message and problems. */
function refusal(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    assert.equal(error.code, 'GH_ERR_CONFIG_INVALID');
    return error;
  }
  assert.fail(`expected ${JSON.stringify(env)} to be refused`);
}

describe('durations and policies', () => {
  it('parses every unit', () => {
    assert.equal(parseDurationMs('500ms'), 500);
    assert.equal(parseDurationMs('30s'), 30_000);
    assert.equal(parseDurationMs('30m'), 1_800_000);
    assert.equal(parseDurationMs('12h'), 43_200_000);
    assert.equal(parseDurationMs('5d'), 432_000_000);
  });

  it('refuses what is not an integer with a unit', () => {
    for (const text of ['', '30', 'm', '1.5h', '-1s', '30 m', '30M', '1h30m', '99999999999999999d', '١٠s']) {
      assert.equal(parseDurationMs(text), undefined, text);
    }
  });

  it('accepts milliseconds or text for library options and names the option otherwise', () => {
    assert.equal(toMs('ttl', 1500), 1500);
    assert.equal(toMs('ttl', '2s'), 2000);
    assert.throws(() => toMs('sessions.idleTimeout', 'soon'), /sessions\.idleTimeout/);
    assert.throws(() => toMs('ttl', -5), /ttl/);
  });

  it('parses limit/period+burst', () => {
    assert.deepEqual(parseRateLimitPolicy('5/1m+2'), { limit: 5, periodMs: 60_000, burst: 2 });
    assert.deepEqual(parseRateLimitPolicy('100/1m'), { limit: 100, periodMs: 60_000, burst: 0 });
    for (const text of ['0/1m', '5/0s', '5/m', '5', '5/1m+', '5/1m+-1', 'five/1m', '5/1m+2x']) {
      assert.equal(parseRateLimitPolicy(text), undefined, text);
    }
  });
});

describe('loadConfig', () => {
  it('has the documented defaults and the memory store when Redis is not configured', () => {
    const config = loadConfig({});
    assert.equal(config.host, '127.0.0.1');
    assert.equal(config.port, 3000);
    assert.deepEqual(config.store, { kind: 'memory', explicit: false });
    assert.equal(config.keyPrefix, 'gh');
    assert.equal(config.databaseUrl, undefined);
    assert.equal(config.dataDir, './data');
    assert.deepEqual(config.sessions, {
      idleTimeoutMs: 30 * 60_000,
      absoluteTimeoutMs: 12 * 3_600_000,
      maxPerUser: 5,
      durable: true,
    });
    assert.equal(config.cookieSecure, false);
    assert.equal(config.secretKeys, undefined);
    assert.equal(config.trustProxy, 0);
    assert.equal(config.logLevel, 'info');
    assert.deepEqual(config.rateLimits, {
      auth: { limit: 5, periodMs: 60_000, burst: 2 },
      api: { limit: 100, periodMs: 60_000, burst: 10 },
      pdf: { limit: 10, periodMs: 60_000, burst: 2 },
      public: { limit: 30, periodMs: 60_000, burst: 10 },
      account: { limit: 10, periodMs: 15 * 60_000, burst: 0 },
      anonymous: { limit: 60, periodMs: 60_000, burst: 30 },
    });
    assert.match(describeStore(config), /SINGLE INSTANCE/);
  });

  it('is frozen all the way down', () => {
    const config = loadConfig({ REDIS_URL: 'redis://127.0.0.1:6380', TRUSTED_ORIGINS: 'https://a.example' });
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.sessions));
    assert.ok(Object.isFrozen(config.store));
    assert.ok(Object.isFrozen(config.trustedOrigins));
    assert.ok(Object.isFrozen(config.rateLimits.auth));
    assert.throws(() => {
      (config.sessions as { maxPerUser: number }).maxPerUser = 99;
    }, TypeError);
  });

  it('reads every variable of the API table', () => {
    const config = loadConfig({
      HOST: '0.0.0.0',
      PORT: '8080',
      DATABASE_URL: 'postgres://app@db:5432/gatehouse',
      DATA_DIR: '/var/lib/gatehouse',
      SESSION_IDLE_TIMEOUT: '15m',
      SESSION_ABSOLUTE_TIMEOUT: '8h',
      SESSION_MAX_PER_USER: '3',
      SESSION_DURABLE: 'false',
      COOKIE_SECURE: 'true',
      TRUSTED_ORIGINS: 'https://app.example.com, https://admin.example.com:8443',
      GOTENBERG_URL: 'http://127.0.0.1:3001',
      SECRET_KEYS: `${KEY_HEX},${KEY_B64}`,
      TRUST_PROXY: 'true',
      LOG_LEVEL: 'debug',
      RATE_LIMIT_AUTH: '10/1m+5',
      RATE_LIMIT_PUBLIC: '60/1h',
      GATEHOUSE_EXPECTED_INSTANCES: '4',
    });
    assert.equal(config.host, '0.0.0.0');
    assert.equal(config.expectedInstances, 4);
    assert.equal(config.port, 8080);
    assert.equal(config.databaseUrl, 'postgres://app@db:5432/gatehouse');
    assert.equal(config.dataDir, '/var/lib/gatehouse');
    assert.deepEqual(config.sessions, {
      idleTimeoutMs: 900_000,
      absoluteTimeoutMs: 28_800_000,
      maxPerUser: 3,
      durable: false,
    });
    assert.equal(config.cookieSecure, true);
    assert.deepEqual(config.trustedOrigins, ['https://app.example.com', 'https://admin.example.com:8443']);
    assert.equal(config.gotenbergUrl, 'http://127.0.0.1:3001');
    assert.deepEqual(config.secretKeys, [Buffer.alloc(32, 0xaa), Buffer.alloc(32, 7)]);
    assert.equal(config.trustProxy, 1);
    assert.equal(config.logLevel, 'debug');
    assert.deepEqual(config.rateLimits.auth, { limit: 10, periodMs: 60_000, burst: 5 });
    assert.deepEqual(config.rateLimits.public, { limit: 60, periodMs: 3_600_000, burst: 0 });
  });

  it('treats empty variables as unset', () => {
    const config = loadConfig({ REDIS_URL: '', PORT: ' ', SECRET_KEYS: '' });
    assert.equal(config.store.kind, 'memory');
    assert.equal(config.port, 3000);
  });

  it('names the variable, the value and what is expected for a bad value', () => {
    const error = refusal({ SESSION_IDLE_TIMEOUT: '30x' });
    assert.match(error.message, /SESSION_IDLE_TIMEOUT="30x"/);
    assert.match(error.message, /integer followed by ms, s, m, h or d/);
    assert.deepEqual(
      error.problems.map((p) => p.variable),
      ['SESSION_IDLE_TIMEOUT'],
    );
  });

  it('reports every bad value at once', () => {
    const error = refusal({
      PORT: '70000',
      SESSION_MAX_PER_USER: '0',
      SESSION_DURABLE: 'maybe',
      LOG_LEVEL: 'loud',
      TRUST_PROXY: 'sometimes',
      TRUSTED_ORIGINS: 'https://app.example.com/path',
      GOTENBERG_URL: 'ftp://x',
      ADMIN_EMAILS: 'not-an-email',
      RATE_LIMIT_API: '100 per minute',
      RATE_LIMIT_APII: '5/1m',
      DATABASE_URL: 'mysql://x',
      REDIS_KEY_PREFIX: 'g{h}',
      GATEHOUSE_EXPECTED_INSTANCES: '0',
    });
    assert.deepEqual(error.problems.map((p) => p.variable).sort(), [
      'ADMIN_EMAILS',
      'DATABASE_URL',
      'GATEHOUSE_EXPECTED_INSTANCES',
      'GOTENBERG_URL',
      'LOG_LEVEL',
      'PORT',
      'RATE_LIMIT_API',
      'RATE_LIMIT_APII',
      'REDIS_KEY_PREFIX',
      'SESSION_DURABLE',
      'SESSION_MAX_PER_USER',
      'TRUSTED_ORIGINS',
      'TRUST_PROXY',
    ]);
    assert.match(error.message, /PORT="70000": expected an integer from 0 to 65535/);
    assert.match(error.message, /RATE_LIMIT_APII="5\/1m": unknown policy/);
  });

  it('takes TRUST_PROXY as a count or as proxy addresses and CIDR ranges, naming a bad entry', () => {
    assert.equal(loadConfig({ TRUST_PROXY: 'true' }).trustProxy, 1);
    assert.equal(loadConfig({ TRUST_PROXY: 'false' }).trustProxy, 0);
    assert.equal(loadConfig({ TRUST_PROXY: '3' }).trustProxy, 3);
    assert.deepEqual(loadConfig({ TRUST_PROXY: '10.0.0.0/8, 127.0.0.1,fd00::/8' }).trustProxy, [
      '10.0.0.0/8',
      '127.0.0.1',
      'fd00::/8',
    ]);
    const bad = refusal({ TRUST_PROXY: '10.0.0.0/8,proxy.internal' });
    assert.equal(bad.problems[0]?.variable, 'TRUST_PROXY');
    assert.match(bad.message, /"proxy.internal" is neither/);
    assert.match(refusal({ TRUST_PROXY: '100' }).message, /at most 99 proxies/);
    assert.match(refusal({ TRUST_PROXY: '10.0.0.0/33' }).message, /"10.0.0.0\/33" is neither/);
  });

  it('refuses an idle timeout longer than the absolute timeout', () => {
    const error = refusal({ SESSION_IDLE_TIMEOUT: '13h' });
    assert.match(error.message, /must not exceed SESSION_ABSOLUTE_TIMEOUT/);
  });

  it('refuses ADMIN_EMAILS, naming the command that grants roles and never the emails', () => {
    for (const env of [
      { ADMIN_EMAILS: 'Admin@Clinic.example', NODE_ENV: 'test' },
      { ADMIN_EMAILS: 'ops@clinic.example,other@clinic.example', NODE_ENV: 'development' },
    ]) {
      const error = refusal(env);
      assert.deepEqual(
        error.problems.map((p) => p.variable),
        ['ADMIN_EMAILS'],
      );
      assert.match(error.message, /ADMIN_EMAILS=.*no longer exists/);
      assert.ok(error.message.includes('gatehouse users grant-role EMAIL admin'), error.message);
      assert.doesNotMatch(error.message, /clinic\.example/i);
    }
    // An empty variable counts as unset, as everywhere.
    assert.equal(loadConfig({ ADMIN_EMAILS: '' }).store.kind, 'memory');
  });

  it('refuses short or malformed secret keys without printing them', () => {
    const shortKey = 'ab'.repeat(16 - 1);
    const error = refusal({ SECRET_KEYS: `${KEY_HEX},${shortKey},not*base64` });
    assert.equal(error.problems.length, 2);
    assert.match(error.message, /key 2 of 3: expected at least 32 random bytes/);
    assert.ok(!error.message.includes(shortKey), 'the key is not echoed');
    assert.ok(!error.message.includes('not*base64'), 'the key is not echoed');
    assert.match(error.message, /redacted/);
  });

  describe('Redis settings', () => {
    it('reads a standalone URL with credentials and database', () => {
      const config = loadConfig({ REDIS_URL: 'rediss://app:p%40ss@redis.internal:6380/2' });
      assert.deepEqual(config.store, {
        kind: 'redis',
        connection: {
          topology: 'standalone',
          host: 'redis.internal',
          port: 6380,
          tls: true,
          commandTimeoutMs: 500,
          username: 'app',
          password: 'p@ss',
          db: 2,
        },
      });
      assert.doesNotMatch(describeStore(config), /p@ss/);
      assert.match(describeStore(config), /standalone at redis.internal:6380 \(TLS, user app/);
    });

    it('reads REDIS_ADDR with REDIS_USERNAME, REDIS_PASSWORD and REDIS_DB', () => {
      const config = loadConfig({
        REDIS_ADDR: '10.0.0.5:6379',
        REDIS_USERNAME: 'gatehouse',
        REDIS_PASSWORD: 'secret',
        REDIS_DB: '1',
        REDIS_COMMAND_TIMEOUT: '250ms',
      });
      assert.deepEqual(config.store, {
        kind: 'redis',
        connection: {
          topology: 'standalone',
          host: '10.0.0.5',
          port: 6379,
          tls: false,
          commandTimeoutMs: 250,
          username: 'gatehouse',
          password: 'secret',
          db: 1,
        },
      });
    });

    it('reads Sentinel and Cluster settings', () => {
      const sentinel = loadConfig({
        REDIS_SENTINELS: '10.0.0.1:26379, 10.0.0.2:26379,[::1]:26380',
        REDIS_SENTINEL_NAME: 'mymaster',
        REDIS_PASSWORD: 'pw',
        REDIS_SENTINEL_PASSWORD: 'spw',
      });
      assert.equal(sentinel.store.kind, 'redis');
      assert.deepEqual(sentinel.store.connection, {
        topology: 'sentinel',
        sentinels: [
          { host: '10.0.0.1', port: 26379 },
          { host: '10.0.0.2', port: 26379 },
          { host: '::1', port: 26380 },
        ],
        name: 'mymaster',
        tls: false,
        commandTimeoutMs: 500,
        sentinelPassword: 'spw',
        password: 'pw',
      });
      const cluster = loadConfig({ REDIS_CLUSTER_NODES: '10.0.0.1:7000,10.0.0.2:7000' });
      assert.deepEqual(cluster.store.kind === 'redis' && cluster.store.connection, {
        topology: 'cluster',
        nodes: [
          { host: '10.0.0.1', port: 7000 },
          { host: '10.0.0.2', port: 7000 },
        ],
        tls: false,
        commandTimeoutMs: 500,
      });
    });

    it('reads TLS files as PEM contents and turns TLS on for Sentinel and Cluster', () => {
      const dir = mkdtempSync(join(tmpdir(), 'gh-config-'));
      for (const name of ['ca', 'cert', 'key']) writeFileSync(join(dir, `${name}.pem`), `PEM ${name}`);
      const config = loadConfig({
        REDIS_CLUSTER_NODES: '10.0.0.1:7000',
        REDIS_TLS_CA: join(dir, 'ca.pem'),
        REDIS_TLS_CERT: join(dir, 'cert.pem'),
        REDIS_TLS_KEY: join(dir, 'key.pem'),
      });
      assert.deepEqual(config.store.kind === 'redis' && config.store.connection.tls, {
        ca: 'PEM ca',
        cert: 'PEM cert',
        key: 'PEM key',
      });
      const missing = refusal({ REDIS_URL: 'rediss://h:6379', REDIS_TLS_CA: join(dir, 'nope.pem') });
      assert.match(missing.message, /REDIS_TLS_CA=".*nope.pem": expected a readable PEM file \(ENOENT\)/);
      const halfPair = refusal({ REDIS_URL: 'rediss://h:6379', REDIS_TLS_CERT: join(dir, 'cert.pem') });
      assert.match(halfPair.message, /must be set together/);
    });

    it('refuses TLS files with a plaintext redis:// URL instead of silently ignoring them', () => {
      const dir = mkdtempSync(join(tmpdir(), 'gh-config-'));
      writeFileSync(join(dir, 'ca.pem'), 'PEM');
      const error = refusal({ REDIS_URL: 'redis://h:6379', REDIS_TLS_CA: join(dir, 'ca.pem') });
      assert.match(error.message, /use rediss:\/\//);
      assert.match(
        refusal({ REDIS_URL: 'rediss://h:6379', REDIS_TLS: 'false' }).message,
        /disagrees with REDIS_URL/,
      );
    });

    it('refuses conflicting or incomplete topologies', () => {
      assert.match(
        refusal({ REDIS_URL: 'redis://a:1', REDIS_ADDR: 'b:2' }).message,
        /REDIS_ADDR.*conflicts with REDIS_URL/,
      );
      assert.match(
        refusal({ REDIS_URL: 'redis://a:1', REDIS_CLUSTER_NODES: 'b:2' }).message,
        /REDIS_CLUSTER_NODES.*conflicts with REDIS_URL/,
      );
      assert.match(
        refusal({ REDIS_SENTINELS: 'a:1' }).message,
        /REDIS_SENTINEL_NAME=\(unset\): required with REDIS_SENTINELS/,
      );
      assert.match(
        refusal({ REDIS_SENTINEL_NAME: 'm' }).message,
        /REDIS_SENTINEL_NAME="m": set without a Redis address/,
      );
      assert.match(refusal({ REDIS_CLUSTER_NODES: 'a:1,b' }).message, /"b" is not host:port/);
      assert.match(refusal({ REDIS_CLUSTER_NODES: 'a:1', REDIS_DB: '3' }).message, /only database 0/);
      assert.match(
        refusal({ REDIS_ADDR: 'localhost' }).message,
        /REDIS_ADDR="localhost": expected host:port/,
      );
      assert.match(refusal({ REDIS_ENABLED: 'true' }).message, /REDIS_ENABLED="true": set REDIS_URL/);
      assert.match(refusal({ REDIS_URL: 'http://a:1' }).message, /scheme http: is not redis/);
      assert.match(refusal({ REDIS_URL: 'redis://a:1/99' }).message, /path is not a database number/);
    });

    it('refuses credentials given twice with different values, never printing the password', () => {
      const error = refusal({ REDIS_URL: 'redis://:inurl@a:1', REDIS_PASSWORD: 'inenv' });
      assert.match(
        error.message,
        /REDIS_PASSWORD=\(redacted, 5 characters\): disagrees with the value inside REDIS_URL/,
      );
      assert.ok(!error.message.includes('inurl') && !error.message.includes('inenv'));
    });

    it('never prints a password with unencoded / or # in a refused REDIS_URL', () => {
      for (const url of [
        'redis://default:12345/s3cretpart@host:6379',
        'redis://u:p#s3cretpart@host:6379/99',
      ]) {
        const error = refusal({ REDIS_URL: url });
        assert.ok(!error.message.includes('s3cretpart'), error.message);
      }
    });

    it('refuses empty node lists, oversized timeouts and port 0; accepts underscores in host names', () => {
      assert.match(refusal({ REDIS_CLUSTER_NODES: ' , ' }).message, /expected at least one host:port/);
      assert.match(
        refusal({ REDIS_SENTINELS: ',', REDIS_SENTINEL_NAME: 'm' }).message,
        /REDIS_SENTINELS.*at least one host:port/,
      );
      assert.match(
        refusal({ REDIS_ADDR: 'a:1', REDIS_COMMAND_TIMEOUT: '30d' }).message,
        /REDIS_COMMAND_TIMEOUT="30d".*from 1 ms to 60000 ms/,
      );
      assert.match(refusal({ REDIS_URL: 'redis://a:0' }).message, /port 0/);
      const config = loadConfig({ REDIS_ADDR: 'redis_primary:6379', HOST: 'my_host' });
      assert.equal(config.store.kind === 'redis' && config.store.connection.topology, 'standalone');
    });

    it('reports every problem even when the topology itself is refused', () => {
      const error = refusal({
        NODE_ENV: 'production',
        SECRET_KEYS: KEY_HEX,
        REDIS_URL: 'redis://a:1',
        REDIS_ADDR: 'b:2',
        REDIS_TLS_CA: '/nonexistent/ca.pem',
      });
      const variables = error.problems.map((p) => p.variable).sort();
      assert.deepEqual(variables, ['REDIS_ADDR', 'REDIS_TLS_CA']);
    });

    it('redacts a password in a refused REDIS_URL', () => {
      const error = refusal({ REDIS_URL: 'redis://user:hunter2@a:1/x' });
      assert.ok(!error.message.includes('hunter2'), error.message);
      assert.match(error.message, /\*\*\*/);
    });

    it('lets REDIS_ENABLED=false force the memory store even with Redis settings', () => {
      assert.deepEqual(loadConfig({ REDIS_ENABLED: 'false', REDIS_URL: 'redis://a:1' }).store, {
        kind: 'memory',
        explicit: true,
      });
    });
  });

  describe('production guards', () => {
    const production = {
      NODE_ENV: 'production',
      SECRET_KEYS: KEY_HEX,
      REDIS_URL: 'rediss://redis.internal:6380',
    };

    it('accepts a complete production configuration, with secure cookies by default', () => {
      const config = loadConfig(production);
      assert.ok(config.production);
      assert.equal(config.cookieSecure, true);
      // Discovered nodes get the rule too (the driver refuses plaintext to them off loopback).
      assert.equal(config.store.kind === 'redis' && config.store.connection.requireTlsOffLoopback, true);
      const development = loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379' });
      assert.equal(
        development.store.kind === 'redis' && development.store.connection.requireTlsOffLoopback,
        undefined,
      );
    });

    it('refuses to start without SECRET_KEYS', () => {
      const { SECRET_KEYS: _unused, ...env } = production;
      assert.match(refusal(env).message, /SECRET_KEYS=\(unset\): required when NODE_ENV=production/);
    });

    it('refuses plaintext Redis to a non-loopback host, in any topology', () => {
      const plaintext: Array<Record<string, string>> = [
        { REDIS_URL: 'redis://redis.internal:6379' },
        { REDIS_ADDR: '10.0.0.5:6379' },
        { REDIS_CLUSTER_NODES: '127.0.0.1:7000,10.0.0.5:7000' },
        { REDIS_SENTINELS: '10.0.0.5:26379', REDIS_SENTINEL_NAME: 'm' },
      ];
      for (const env of plaintext) {
        const error = refusal({ NODE_ENV: 'production', SECRET_KEYS: KEY_HEX, ...env });
        assert.match(error.message, /refuses plaintext Redis to a non-loopback host/, JSON.stringify(env));
        assert.equal(error.problems[0]?.variable, Object.keys(env)[0]);
      }
      assert.equal(loadConfig({ ...production, REDIS_URL: 'redis://127.0.0.1:6379' }).production, true);
    });

    it('refuses NODE_ENV spelled any other way than production, development or test', () => {
      for (const spelling of ['prod', 'Production', 'PRODUCTION', 'staging', 'dev']) {
        const error = refusal({ ...production, NODE_ENV: spelling });
        assert.equal(error.problems[0]?.variable, 'NODE_ENV', spelling);
        assert.match(error.message, /expected production, development, test/);
      }
      for (const spelling of ['development', 'test']) {
        assert.equal(loadConfig({ NODE_ENV: spelling }).nodeEnv, spelling);
      }
      assert.equal(loadConfig({}).nodeEnvDefaulted, true);
      assert.equal(loadConfig({ NODE_ENV: 'development' }).nodeEnvDefaulted, false);
    });

    it('refuses COOKIE_SECURE=false', () => {
      const error = refusal({ ...production, COOKIE_SECURE: 'false' });
      assert.deepEqual(
        error.problems.map((p) => p.variable),
        ['COOKIE_SECURE'],
      );
      assert.match(error.message, /refuses cookies without Secure/);
    });

    it('refuses PostgreSQL to a non-loopback host without sslmode=require or stricter, naming no password', () => {
      for (const url of [
        'postgres://app:hunter2@db.internal:5432/app',
        'postgres://app:hunter2@10.0.0.7/app?sslmode=prefer',
        'postgresql://app:hunter2@db.internal/app?sslmode=disable',
        'postgres://app:hunter2@[2001:db8::7]:5432/app',
      ]) {
        const error = refusal({ ...production, DATABASE_URL: url });
        assert.equal(error.problems[0]?.variable, 'DATABASE_URL', url);
        assert.match(error.message, /refuses PostgreSQL to a non-loopback host without TLS/);
        assert.ok(!error.message.includes('hunter2'), error.message);
      }
      for (const url of [
        'postgres://app:hunter2@db.internal:5432/app?sslmode=require',
        'postgres://app@db.internal/app?sslmode=verify-full',
        'postgres://app@127.0.0.1:5432/app',
        'postgres://app@localhost/app',
        'postgres://app@[::1]/app',
        'postgres:///app?host=/run/postgresql',
      ]) {
        assert.equal(loadConfig({ ...production, DATABASE_URL: url }).databaseUrl, url);
      }
      // Outside production the same URL is accepted (a developer's remote test database).
      assert.ok(loadConfig({ DATABASE_URL: 'postgres://app@db.internal/app' }).databaseUrl);
    });

    it('refuses a GOTENBERG_URL that is not https:// to a non-loopback host, naming no password', () => {
      const error = refusal({
        ...production,
        GOTENBERG_URL: 'http://render:hunter2@gotenberg.internal:3000',
      });
      assert.equal(error.problems[0]?.variable, 'GOTENBERG_URL');
      assert.match(error.message, /refuses http:\/\/ to a non-loopback host/);
      assert.ok(!error.message.includes('hunter2'), error.message);
      for (const url of ['https://gotenberg.internal', 'http://127.0.0.1:3000', 'http://localhost:3000']) {
        assert.ok(loadConfig({ ...production, GOTENBERG_URL: url }).gotenbergUrl, url);
      }
    });

    it('lists every production refusal at once, each naming its variable and no secret', () => {
      const error = refusal({
        NODE_ENV: 'production',
        COOKIE_SECURE: 'false',
        REDIS_URL: 'redis://:hunter2@redis.internal:6379',
        DATABASE_URL: 'postgres://app:hunter2@db.internal/app',
        GOTENBERG_URL: 'http://gotenberg.internal',
      });
      assert.deepEqual(error.problems.map((p) => p.variable).sort(), [
        'COOKIE_SECURE',
        'DATABASE_URL',
        'GOTENBERG_URL',
        'REDIS_URL',
        'SECRET_KEYS',
      ]);
      assert.ok(!error.message.includes('hunter2'), error.message);
    });

    it('refuses the memory store unless REDIS_ENABLED=false is explicit', () => {
      const { REDIS_URL: _unused, ...env } = production;
      assert.match(refusal(env).message, /needs Redis/);
      assert.deepEqual(loadConfig({ ...env, REDIS_ENABLED: 'false' }).store, {
        kind: 'memory',
        explicit: true,
      });
    });
  });
});
