/**
 * The library as npm delivers it: `npm pack` of packages/gatehouse, installed into an empty
 * project as a user would, checked for what it brings (packages, bytes, warnings), imported
 * from plain ESM JavaScript, type-checked from TypeScript under both module resolutions users
 * run (node16 and bundler), and run as the README's smallest Express and Fastify apps.
 *
 * The frameworks are linked into the project from this repository's node_modules (they are
 * the user's own dependencies, not the library's); the library's own dependencies come from
 * the npm cache that installing the repository filled.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import {
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';

import { npmEnvironment } from '../harness/npm.js';

const run = promisify(execFile);
const library = new URL('../..', import.meta.url).pathname;
const repository = new URL('../../../..', import.meta.url).pathname;

/** What the issue of a light library allows: the library and its dependencies, installed. */
const MAX_PACKAGES = 5;
const MAX_BYTES = 16 * 1000 * 1000;

/** Every installed package under node_modules (scoped ones included), by name. */
function installedPackages(modules: string): string[] {
  return readdirSync(modules, { withFileTypes: true }).flatMap((entry) => {
    if (entry.name.startsWith('.') || !entry.isDirectory()) return [];
    if (entry.name.startsWith('@')) {
      return readdirSync(join(modules, entry.name)).map((name) => `${entry.name}/${name}`);
    }
    return [entry.name];
  });
}

/** What `du` counts: the blocks allocated (many small files take more than their bytes). */
function bytesOnDisk(path: string): number {
  const stat = statSync(path);
  const own = stat.blocks * 512;
  if (!stat.isDirectory()) return own;
  return readdirSync(path).reduce((sum, name) => sum + bytesOnDisk(join(path, name)), own);
}

/** Starts `node <file>` in the project and waits for its `listening on <url>` line. */
async function startApp(project: string, file: string): Promise<{ url: string; stop(): Promise<void> }> {
  const child = spawn(process.execPath, [file], {
    cwd: project,
    env: { PATH: process.env.PATH ?? '', PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /listening on (http:\/\/\S+)/.exec(output);
      if (match?.[1]) resolve(match[1]);
    });
    child.once('exit', (code) => {
      reject(new Error(`${file} exited (${String(code)}): ${output}`));
    });
  });
  return {
    url,
    stop: async () => {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    },
  };
}

describe('the packed library, installed into an empty project', { timeout: 240_000 }, () => {
  let scratch: string;
  let project: string;
  let tarball: string;
  let installOutput: string;

  before(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'gh-package-'));
    // prepack builds dist/ first (nothing to do when it is fresh).
    const packed = await run('npm', ['pack', '--json', '--pack-destination', scratch], {
      cwd: library,
      env: npmEnvironment(),
    });
    const [{ filename }] = JSON.parse(packed.stdout) as [{ filename: string }];
    tarball = join(scratch, filename);
    project = join(scratch, 'app');
    await run('mkdir', [project]);
    writeFileSync(
      join(project, 'package.json'),
      JSON.stringify({ name: 'app', private: true, type: 'module' }),
    );
    const installed = await run(
      'npm',
      ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=warn'],
      { cwd: project, env: npmEnvironment() },
    );
    installOutput = installed.stdout + installed.stderr;
  });

  after(() => {
    rmSync(scratch, { recursive: true, force: true });
  });

  it('ships the compiled library and its Lua scripts, nothing of the server, tests or sources', async () => {
    const listing = await run('tar', ['-tzf', tarball]);
    const files = listing.stdout.split('\n').filter((line) => line !== '');
    for (const expected of [
      'package/package.json',
      'package/README.md',
      'package/LICENSE',
      'package/dist/index.js',
      'package/dist/index.d.ts',
      'package/dist/adapters/fastify.js',
      'package/dist/adapters/express.js',
      // The Lua scripts, with their shared pieces included at build time.
      'package/dist/store/redis/scripts.generated.js',
    ]) {
      assert.ok(files.includes(expected), `${expected} is in the tarball`);
    }
    const unexpected = files.filter(
      (file) => !/^package\/(dist\/|package\.json$|README\.md$|LICENSE$)/.test(file),
    );
    assert.deepEqual(unexpected, []);
    assert.ok(!files.some((file) => file.endsWith('.build-fingerprint')));
  });

  it(`installs at most ${String(MAX_PACKAGES)} packages in at most 16 MB, with no warning to act on`, () => {
    const modules = join(project, 'node_modules');
    const packages = installedPackages(modules).sort();
    const bytes = bytesOnDisk(modules);
    // The figures the README quotes; printed so a run shows them.
    console.log(
      `installed: ${packages.join(', ')} (${String(packages.length)} packages, ${(bytes / 1e6).toFixed(1)} MB on disk)`,
    );
    assert.ok(packages.length <= MAX_PACKAGES, packages.join(', '));
    assert.ok(bytes <= MAX_BYTES, `${String(bytes)} bytes`);
    assert.doesNotMatch(installOutput, /npm (warn|WARN|ERR)/, installOutput);
    const manifest = JSON.parse(readFileSync(join(modules, 'gatehouse', 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    assert.deepEqual(Object.keys(manifest.dependencies).sort(), ['@redis/client', 'fastify-plugin']);
  });

  it('imports from plain ESM JavaScript, without Fastify or Express installed', async () => {
    const script = [
      "import { createGatehouse, RouteDefinitionError } from 'gatehouse';",
      "import { gatehouseFastify } from 'gatehouse/fastify';",
      "import { gatehouseExpress } from 'gatehouse/express';",
      "const gh = await createGatehouse({ redis: 'memory', secretKeys: ['a'.repeat(64)], origin: 'http://localhost' });",
      'const { token } = await gh.sessions.create({ userId: "u1" });',
      'const session = await gh.sessions.validate(token);',
      'console.log(typeof gatehouseFastify, typeof gatehouseExpress, typeof RouteDefinitionError, session.userId);',
      'await gh.close();',
    ].join('\n');
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: project });
    assert.equal(stdout.trim(), 'function function function u1');
  });

  describe('with the user’s own Fastify and Express', () => {
    before(() => {
      // The frameworks, their types and Node's types, as the user's project would have them.
      for (const name of ['fastify', 'express', '@types']) {
        symlinkSync(join(repository, 'node_modules', name), join(project, 'node_modules', name));
      }
    });

    for (const resolution of ['node16', 'bundler'] as const) {
      it(`type-checks TypeScript using the library and both adapters (moduleResolution ${resolution})`, async () => {
        const dir = join(project, `ts-${resolution}`);
        await run('mkdir', [dir]);
        // The repository's complete examples, compiled against the installed declarations.
        for (const name of ['express.ts', 'fastify.ts']) {
          writeFileSync(join(dir, name), readFileSync(join(library, 'examples', name)));
        }
        writeFileSync(
          join(dir, 'tsconfig.json'),
          JSON.stringify({
            compilerOptions: {
              target: 'ES2022',
              module: resolution === 'node16' ? 'node16' : 'esnext',
              moduleResolution: resolution,
              strict: true,
              noEmit: true,
              types: ['node'],
            },
            include: ['*.ts'],
          }),
        );
        const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
        const result = await run(process.execPath, [tsc, '-p', dir]).catch(
          (error: unknown) => error as { stdout: string; code: number },
        );
        assert.equal('code' in result ? result.code : 0, 0, result.stdout);
      });
    }

    for (const framework of ['express', 'fastify'] as const) {
      it(`runs the README's smallest ${framework} app: sign in, a protected route, 401 without a session`, async () => {
        const file = `smallest-${framework}.mjs`;
        const source = readFileSync(join(library, 'examples', file), 'utf8');
        const readme = readFileSync(join(library, 'README.md'), 'utf8');
        assert.ok(
          readme.includes(`\`\`\`js\n${source}\`\`\``),
          `the README shows examples/${file} as written`,
        );
        writeFileSync(join(project, file), source);
        const app = await startApp(project, file);
        try {
          const signin = await fetch(`${app.url}/signin`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ userId: 'user-1' }),
          });
          assert.equal(signin.status, 200);
          const cookie = (signin.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
          assert.match(cookie, /^__Host-gh_session=/);
          const { sessionToken } = (await signin.json()) as { sessionToken: string };

          const byCookie = await fetch(`${app.url}/me`, { headers: { cookie } });
          assert.equal(byCookie.status, 200);
          assert.deepEqual(await byCookie.json(), { userId: 'user-1' });
          assert.equal(byCookie.headers.get('cache-control'), 'no-store');
          assert.ok(byCookie.headers.get('x-ratelimit-limit'));
          const byBearer = await fetch(`${app.url}/me`, {
            headers: { authorization: `Bearer ${sessionToken}` },
          });
          assert.equal(byBearer.status, 200);

          const anonymous = await fetch(`${app.url}/me`);
          assert.equal(anonymous.status, 401);
          const refused = (await anonymous.json()) as { success: boolean; error: { code: string } };
          assert.deepEqual([refused.success, refused.error.code], [false, 'UNAUTHENTICATED']);
        } finally {
          await app.stop();
        }
      });
    }
  });
});
