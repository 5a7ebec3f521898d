/**
 * The `gatehouse` command as an operator meets it: start-up refuses bad configuration with a
 * message naming the variable, and accepts the embedded defaults or a real Redis.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';

import { startStandalone, type Standalone } from './harness/topologies.js';

const MAIN = new URL('../src/cli/main.ts', import.meta.url).pathname;

/** Runs the CLI with exactly `env` (plus PATH), never the test process's own environment. */
function run(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
      env: { PATH: process.env.PATH ?? '', ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('exit', (code) => {
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

describe('gatehouse CLI', () => {
  let redis: Standalone;

  before(async () => {
    redis = await startStandalone();
  });

  after(async () => {
    await redis.destroy();
  });

  it('serve refuses bad configuration, naming each variable, value and expectation', async () => {
    const { code, stderr, stdout } = await run(['serve'], {
      SESSION_IDLE_TIMEOUT: '30x',
      PORT: 'eighty',
      SECRET_KEYS: 'tooshort',
    });
    assert.equal(code, 1);
    assert.match(stderr, /SESSION_IDLE_TIMEOUT="30x": expected an integer followed by ms, s, m, h or d/);
    assert.match(stderr, /PORT="eighty": expected an integer from 0 to 65535/);
    assert.match(stderr, /SECRET_KEYS=\(redacted, 8 characters\)/);
    assert.ok(!stderr.includes('tooshort'), 'secrets are not echoed');
    assert.equal(stdout, '', 'nothing starts');
  });

  it('serve refuses production without its guards', async () => {
    const { code, stderr } = await run(['serve'], { NODE_ENV: 'production' });
    assert.equal(code, 1);
    assert.match(stderr, /SECRET_KEYS=\(unset\): required when NODE_ENV=production/);
    assert.match(stderr, /needs Redis/);
  });

  it('serve accepts the embedded defaults and says loudly that the memory store is single-instance', async () => {
    const { code, stderr, stdout } = await run(['serve']);
    assert.equal(code, 0, stderr);
    assert.match(stderr, /MEMORY STORE/);
    assert.match(stdout, /reference service is not built yet/);
  });

  it('serve connects to Redis from REDIS_ADDR and reports it ready', async () => {
    const { code, stderr } = await run(['serve'], { REDIS_ADDR: `127.0.0.1:${String(redis.server.port)}` });
    assert.equal(code, 0, stderr);
    assert.match(stderr, /"mode":"standalone","status":"up".*"msg":"store ready"/);
  });

  it('acl-rule prints the least-privilege rule for a prefix', async () => {
    const { code, stdout } = await run(['acl-rule', '--prefix', 'myapp']);
    assert.equal(code, 0);
    assert.match(stdout, /^resetkeys ~myapp:\* resetchannels &myapp:\* -@all .*\+evalsha/);
  });

  it('refuses a prefix that would widen the ACL rule, and unknown flags, without a stack trace', async () => {
    const wide = await run(['acl-rule', '--prefix', '*']);
    assert.equal(wide.code, 1);
    assert.match(wide.stderr, /--prefix must be/);
    const flag = await run(['serve', '--verbose']);
    assert.equal(flag.code, 1);
    assert.match(flag.stderr, /Unknown option '--verbose'/);
    assert.doesNotMatch(flag.stderr, /\n\s+at /);
  });

  it('serve fails when Redis does not answer', async () => {
    const { code, stderr } = await run(['serve'], { REDIS_ADDR: '127.0.0.1:1' });
    assert.equal(code, 1);
    assert.match(stderr, /store not ready/);
  });

  it('answers --help and refuses unknown commands', async () => {
    const help = await run(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage: gatehouse <command>/);
    const unknown = await run(['launch']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /unknown command "launch"/);
  });
});
