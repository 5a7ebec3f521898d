// Builds dist/: compiles src/ with tsc and copies the Lua scripts beside the compiled code,
// where src/store/script.ts expects them (../lua relative to the store module).
import { execFileSync } from 'node:child_process';
import { cpSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
rmSync('dist', { recursive: true, force: true });
execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json'], {
  stdio: 'inherit',
});
cpSync('src/lua', 'dist/lua', { recursive: true });
