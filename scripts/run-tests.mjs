// Runs the tests of every package (packages/*/test/**/*.test.ts) with Node's own test runner,
// TypeScript through tsx, `gatehouse` resolved to the library's source (the gatehouse-source
// condition). The runner's own summary closes the output; its exit code is ours.
//
// Usage: npm test [-- [--package <name>] [<substring> ...]]
//   --package gatehouse   only the library's tests (packages/gatehouse/test); --package server
//   <substring>           only the files whose path contains one of the substrings
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';

import { writeGeneratedScripts } from './generate-lua.mjs';

const root = new URL('..', import.meta.url).pathname;
const PACKAGES = readdirSync(join(root, 'packages')).filter((name) =>
  existsSync(join(root, 'packages', name, 'test')),
);

function findTests(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return findTests(path);
    return entry.name.endsWith('.test.ts') ? [path] : [];
  });
}

const { values, positionals: filters } = parseArgs({
  allowPositionals: true,
  options: { package: { type: 'string', multiple: true } },
});
const packages = values.package ?? PACKAGES;
for (const name of packages) {
  if (!PACKAGES.includes(name)) {
    console.error(`no package "${name}" with tests; there are: ${PACKAGES.join(', ')}`);
    process.exit(1);
  }
}
const files = packages
  .flatMap((name) => findTests(join(root, 'packages', name, 'test')))
  .map((file) => relative(root, file))
  .filter((file) => filters.length === 0 || filters.some((filter) => file.includes(filter)))
  .sort();
if (files.length === 0) {
  console.error(`no test file matches ${filters.join(', ')}`);
  process.exit(1);
}
// The tests run the .lua files as they are.
writeGeneratedScripts();

// Two cores: two test files at a time keeps real servers from starving each other.
const concurrency = process.env.TEST_CONCURRENCY ?? '2';
// The whole run may take this long; past it, it is stopped and fails (a file whose failure left
// a handle open, a server or a socket, cannot hold CI until its own limit).
const RUN_LIMIT_MS = 30 * 60_000;
const result = spawnSync(
  process.execPath,
  // A test that hangs fails after 4 minutes. Not --test-force-exit: on Node 20 it ends a file
  // before all of its tests have run, now and then, and reports it as passed. Leaks in passing
  // code are tested explicitly (packages/gatehouse/test/programs/locks-exit.ts runs in a child).
  [
    '--conditions=gatehouse-source',
    '--import',
    'tsx',
    '--test',
    // One summary format on every Node version (22 and later default to spec on a pipe).
    '--test-reporter=tap',
    `--test-concurrency=${concurrency}`,
    '--test-timeout=240000',
    ...files,
  ],
  { cwd: root, stdio: 'inherit', timeout: RUN_LIMIT_MS, killSignal: 'SIGKILL' },
);
if (result.error) console.error(`the test run was stopped: ${result.error.message}`);
process.exit(result.status ?? 1);
