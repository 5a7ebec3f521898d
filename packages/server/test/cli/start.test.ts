/**
 * The README's first command on a clean copy of the repository: `npm install` ends without a
 * warning to act on, `npm start` builds and serves /health on the embedded defaults, a second
 * `npm start` with nothing changed starts without building, and two instances started together
 * after a change build once.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { appendFileSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';

import { npmEnvironment } from '../../../gatehouse/test/harness/npm.js';
import { freePort } from '../../../gatehouse/test/harness/redis-server.js';

const run = promisify(execFile);
const repository = new URL('../../../..', import.meta.url).pathname;
const STAMPS = ['packages/gatehouse/dist/.build-fingerprint', 'packages/server/dist/.build-fingerprint'];

interface Started {
  readonly child: ChildProcess;
  readonly output: () => string;
  /** From spawning `npm start` to the first 200 from /health. */
  readonly startMs: number;
  stop(): Promise<void>;
}

/** `npm start` in `dir` on a free port with its own DATA_DIR; resolves once /health answers 200. */
async function npmStart(dir: string, dataDir: string): Promise<Started> {
  const port = await freePort();
  const started = performance.now();
  // Its own process group, so that stopping it reaches npm's child (the service) too.
  const child = spawn('npm', ['start'], {
    cwd: dir,
    detached: true,
    env: npmEnvironment({
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      HOST: '127.0.0.1',
      PORT: String(port),
      DATA_DIR: dataDir,
    }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    process.kill(-(child.pid ?? 0), 'SIGTERM');
    await exited;
  };
  const deadline = Date.now() + 180_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`npm start exited:\n${output}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`npm start did not serve /health:\n${output}`);
    }
    const healthy = await fetch(`http://127.0.0.1:${String(port)}/health`).then(
      (response) => response.status === 200,
      () => false,
    );
    if (healthy) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { child, output: () => output, startMs: performance.now() - started, stop };
}

describe('npm install && npm start on a clean copy', { timeout: 600_000 }, () => {
  let scratch: string;
  let checkout: string;

  before(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'gh-start-'));
    checkout = join(scratch, 'gatehouse');
    // What a clone holds: the tracked files and new ones not ignored, nothing built or installed.
    const { stdout } = await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
      cwd: repository,
      maxBuffer: 16 * 1024 * 1024,
    });
    for (const file of stdout.split('\0').filter((path) => path !== '')) {
      const target = join(checkout, file);
      mkdirSync(dirname(target), { recursive: true });
      try {
        copyFileSync(join(repository, file), target);
      } catch (error) {
        // A file deleted in the working tree but not yet from the index.
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
    }
  });

  after(() => {
    rmSync(scratch, { recursive: true, force: true });
  });

  it('npm install ends without a warning to act on', async () => {
    // From the npm cache that installing this repository filled; the registry only for a miss.
    const installed = await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund'], {
      cwd: checkout,
      env: npmEnvironment(),
      maxBuffer: 16 * 1024 * 1024,
    });
    const output = installed.stdout + installed.stderr;
    assert.doesNotMatch(output, /npm (warn|WARN|ERR)/, output);
  });

  it('npm start builds once and serves /health; a second start builds nothing', async () => {
    const first = await npmStart(checkout, join(scratch, 'data-1'));
    await first.stop();
    assert.match(first.output(), /built packages\/gatehouse\/dist/);
    assert.match(first.output(), /built packages\/server\/dist/);
    const stamped = STAMPS.map((stamp) => statSync(join(checkout, stamp)).mtimeMs);

    const second = await npmStart(checkout, join(scratch, 'data-1'));
    await second.stop();
    assert.doesNotMatch(second.output(), /built /, second.output());
    assert.deepEqual(
      STAMPS.map((stamp) => statSync(join(checkout, stamp)).mtimeMs),
      stamped,
      'dist/ is untouched',
    );
    // The figures the README quotes (PGlite's first start in a new DATA_DIR is in the first).
    console.log(
      `npm start to /health: ${(first.startMs / 1000).toFixed(1)} s with the build, ${(second.startMs / 1000).toFixed(1)} s without`,
    );
  });

  it('two instances started together after a change build it once', async () => {
    // A change to the server only: the library stays as built.
    appendFileSync(join(checkout, 'packages/server/src/cli/main.ts'), '\n// changed\n');
    const [one, two] = await Promise.all([
      npmStart(checkout, join(scratch, 'data-2')),
      npmStart(checkout, join(scratch, 'data-3')),
    ]);
    await Promise.all([one.stop(), two.stop()]);
    const builds = [one, two].map(
      (started) => (started.output().match(/built packages\/server\/dist/g) ?? []).length,
    );
    assert.deepEqual(
      builds.sort(),
      [0, 1],
      `one of them built the server:\n${one.output()}\n---\n${two.output()}`,
    );
    for (const started of [one, two])
      assert.doesNotMatch(started.output(), /built packages\/gatehouse\/dist/);
  });
});
