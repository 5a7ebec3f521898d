// The tests on every Node.js version gatehouse supports, as CI runs them: the whole suite on
// Node 22, on Node 20 and on Node 24, one after the other (two cores: never at once). Each
// package's `engines` names exactly these. Missing binaries are downloaded once
// (scripts/node-binaries.mjs).
//
// Usage: npm run test:matrix
import { spawnSync } from 'node:child_process';

import { nodeBinary } from './node-binaries.mjs';

const RUNS = [
  { major: 22, args: [], what: 'the whole suite' },
  { major: 20, args: [], what: 'the whole suite' },
  { major: 24, args: [], what: 'the whole suite' },
];

const runner = new URL('run-tests.mjs', import.meta.url).pathname;
const results = [];
for (const run of RUNS) {
  const node = nodeBinary(run.major);
  const started = Date.now();
  console.log(`\n# ${run.what} on Node.js ${run.major} (${node})`);
  const result = spawnSync(node, [runner, ...run.args], { stdio: 'inherit' });
  results.push({ ...run, status: result.status ?? 1, seconds: Math.round((Date.now() - started) / 1000) });
}
console.log('');
for (const { major, what, status, seconds } of results) {
  console.log(`# Node.js ${major}, ${what}: ${status === 0 ? 'passed' : 'FAILED'} in ${seconds} s`);
}
process.exit(results.every((result) => result.status === 0) ? 0 : 1);
