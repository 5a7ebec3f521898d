/**
 * Type tests: a typed usage file per adapter compiles on its own, without casts, and its
 * `@ts-expect-error` lines prove `request.session` / `req.session` is `Session | null`, not `any`.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { it } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);

it(
  'request.session and req.session are typed without casts (tsc on test/types)',
  { timeout: 120_000 },
  async () => {
    const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
    const project = new URL('types/tsconfig.json', import.meta.url).pathname;
    const result = await run(process.execPath, [tsc, '-p', project]).catch(
      (error: unknown) => error as { stdout: string; code: number },
    );
    assert.equal('code' in result ? result.code : 0, 0, 'stdout' in result ? result.stdout : '');
  },
);
