// Builds each package's dist/ (TypeScript through tsc; the library's Lua scripts are generated
// into packages/gatehouse/src/store/redis/scripts.generated.ts first, by scripts/generate-lua.mjs),
// and only when its inputs changed: a start with nothing changed runs no compiler.
//
// Usage: node scripts/build.mjs [gatehouse | server ...]   (default: both, the library first:
// the server compiles against the library's declarations)
//
// - Fresh or not: dist/.build-fingerprint holds a SHA-256 of every input file (path and bytes),
//   the TypeScript version and, for the server, the library's fingerprint.
// - Two builds at once (two instances started together): a lock directory per package lets one
//   build while the other waits, then finds the fresh fingerprint and builds nothing.
// - A build goes to .dist-next and replaces dist/ only when complete, so a failed or
//   interrupted build never leaves a half-written dist/ that looks fresh.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative } from 'node:path';

import { writeGeneratedScripts } from './generate-lua.mjs';

const root = new URL('..', import.meta.url).pathname;
const require = createRequire(import.meta.url);
const TSC = require.resolve('typescript/bin/tsc');
const TYPESCRIPT_VERSION = JSON.parse(
  readFileSync(require.resolve('typescript/package.json'), 'utf8'),
).version;

const PACKAGES = {
  gatehouse: { dir: 'packages/gatehouse', needs: [] },
  server: { dir: 'packages/server', needs: ['gatehouse'] },
};
const SHARED_INPUTS = ['tsconfig.base.json'];
const PACKAGE_INPUTS = ['src', 'tsconfig.build.json', 'package.json'];
const STAMP = '.build-fingerprint';
const LOCK_WAIT_MS = 180_000;

function files(path) {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path)
    .sort()
    .flatMap((name) => files(join(path, name)));
}

const fingerprints = new Map();

function fingerprint(name) {
  const known = fingerprints.get(name);
  if (known) return known;
  const { dir, needs } = PACKAGES[name];
  const hash = createHash('sha256').update(`typescript ${TYPESCRIPT_VERSION}\n`);
  for (const need of needs) hash.update(`needs ${need} ${fingerprint(need)}\n`);
  const inputs = [
    ...SHARED_INPUTS.map((input) => join(root, input)),
    ...PACKAGE_INPUTS.map((input) => join(root, dir, input)),
  ];
  for (const file of inputs.flatMap(files)) {
    hash
      .update(`${relative(root, file)}\n`)
      .update(readFileSync(file))
      .update('\n');
  }
  const value = hash.digest('hex');
  fingerprints.set(name, value);
  return value;
}

function builtFingerprint(dir) {
  try {
    return readFileSync(join(root, dir, 'dist', STAMP), 'utf8').trim();
  } catch {
    return undefined;
  }
}

function isAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Takes the package's build lock, waiting for another build to finish; a dead holder's lock is taken over. */
function lock(dir) {
  const path = join(root, dir, '.build-lock');
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      mkdirSync(path);
      writeFileSync(join(path, 'pid'), String(process.pid));
      return () => rmSync(path, { recursive: true, force: true });
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
    }
    let holder;
    try {
      holder = Number(readFileSync(join(path, 'pid'), 'utf8'));
    } catch {
      holder = undefined; // Just created: its pid is being written.
    }
    if (holder !== undefined && Number.isSafeInteger(holder) && holder > 0 && !isAlive(holder)) {
      rmSync(path, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline)
      throw new Error(`${dir}: another build has held ${path} for over ${LOCK_WAIT_MS / 1000} s`);
    Atomics.wait(sleeper, 0, 0, 100);
  }
}

function build(name) {
  const { dir } = PACKAGES[name];
  const wanted = fingerprint(name);
  if (builtFingerprint(dir) === wanted) return;
  const unlock = lock(dir);
  try {
    // Another process may have built it while this one waited for the lock.
    if (builtFingerprint(dir) === wanted) return;
    const started = Date.now();
    const next = join(root, dir, '.dist-next');
    const old = join(root, dir, '.dist-old');
    rmSync(next, { recursive: true, force: true });
    execFileSync(process.execPath, [TSC, '-p', 'tsconfig.build.json', '--outDir', '.dist-next'], {
      cwd: join(root, dir),
      stdio: 'inherit',
    });
    writeFileSync(join(next, STAMP), `${wanted}\n`);
    rmSync(old, { recursive: true, force: true });
    try {
      renameSync(join(root, dir, 'dist'), old);
    } catch (error) {
      if (error.code !== 'ENOENT') throw error;
    }
    renameSync(next, join(root, dir, 'dist'));
    rmSync(old, { recursive: true, force: true });
    process.stderr.write(`built ${dir}/dist in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  } finally {
    unlock();
  }
}

writeGeneratedScripts();

const requested = process.argv.slice(2);
for (const name of requested) {
  if (!(name in PACKAGES)) {
    process.stderr.write(`build: no package "${name}"; there are: ${Object.keys(PACKAGES).join(', ')}\n`);
    process.exit(1);
  }
}
const names = requested.length === 0 ? Object.keys(PACKAGES) : requested;
// Dependencies first, each once.
const order = [];
const visit = (name) => {
  if (order.includes(name)) return;
  PACKAGES[name].needs.forEach(visit);
  order.push(name);
};
names.forEach(visit);
for (const name of order) build(name);
