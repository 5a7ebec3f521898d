// Runs every test/**/*.test.ts file with Node's own test runner (TypeScript through tsx).
// Usage: npm test [-- <substring> ...]  runs only the files whose path contains a substring.
// The runner's own summary closes the output; its exit code is ours.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

function findTests(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return findTests(path);
    return entry.name.endsWith('.test.ts') ? [path] : [];
  });
}

const filters = process.argv.slice(2);
const files = findTests('test')
  .filter((file) => filters.length === 0 || filters.some((filter) => file.includes(filter)))
  .sort();
if (files.length === 0) {
  console.error(`no test file matches ${filters.join(', ')}`);
  process.exit(1);
}
// Two cores: two test files at a time keeps real servers from starving each other.
const concurrency = process.env.TEST_CONCURRENCY ?? '2';
// The whole run may take this long; past it, it is stopped and fails (a file whose failure left
// a handle open, a server or a socket, cannot hold CI until its own limit).
const RUN_LIMIT_MS = 30 * 60_000;
const result = spawnSync(
  process.execPath,
  // A test that hangs fails after 4 minutes. Not --test-force-exit: on Node 20 it ends a file
  // before all of its tests have run, now and then, and reports it as passed (lua.test.ts ran
  // 33 to 46 of its 46 tests). Leaks in passing code are tested explicitly
  // (test/programs/locks-exit.ts runs in a child).
  ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-timeout=240000', ...files],
  { stdio: 'inherit', timeout: RUN_LIMIT_MS, killSignal: 'SIGKILL' },
);
if (result.error) console.error(`the test run was stopped: ${result.error.message}`);
process.exit(result.status ?? 1);
