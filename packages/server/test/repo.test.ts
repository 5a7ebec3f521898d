/** The promises the README makes about how to run things, held to the files that keep them. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

const read = (path: string) => readFileSync(new URL(`../../../${path}`, import.meta.url), 'utf8');

describe('README and CI', () => {
  it('.ci/run runs exactly the test command the README gives', () => {
    const ciCommand = read('.ci/run')
      .split('\n')
      .filter((line) => line.trim() !== '' && !line.startsWith('#') && !/^(set|cd) /.test(line));
    assert.equal(ciCommand.length, 1, 'one command in .ci/run');
    assert.ok(read('README.md').includes(`\n${ciCommand[0] ?? ''}\n`), `README shows: ${ciCommand[0] ?? ''}`);
  });

  it('each package has its README and the LICENSE its license field names', () => {
    const license = read('LICENSE');
    assert.match(license, /Apache License\s+Version 2\.0/);
    for (const dir of ['.', 'packages/gatehouse', 'packages/server']) {
      const manifest = JSON.parse(read(`${dir}/package.json`)) as { license: string };
      assert.equal(manifest.license, 'Apache-2.0', dir);
      assert.equal(read(`${dir}/LICENSE`), license, `${dir}/LICENSE`);
      assert.ok(read(`${dir}/README.md`).length > 1000, `${dir}/README.md`);
    }
  });

  it('the README start command exists as npm scripts', () => {
    assert.ok(read('README.md').includes('\nnpm install && npm start\n'));
    const scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts;
    for (const name of ['start', 'test', 'test:matrix', 'lint', 'build'])
      assert.ok(scripts[name], `npm run ${name}`);
  });
});
