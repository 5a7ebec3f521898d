/**
 * The library README's complete framework services, run as written: examples/fastify.ts and
 * examples/express.ts are each started as their own process against a real Redis, driven over
 * HTTP, and stopped with SIGTERM. packages/gatehouse/README.md must show each file verbatim.
 * (The smallest apps, in plain JavaScript, run against the packed library: package.test.ts.)
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';

import { startStandalone, type Standalone } from '../harness/topologies.js';
import { TYPESCRIPT_NODE_ARGS } from '../harness/typescript.js';

const ORIGIN = 'http://localhost:3000';
const examplePath = (name: string) => new URL(`../../examples/${name}.ts`, import.meta.url).pathname;

describe('README examples', () => {
  let redis: Standalone;
  before(async () => {
    redis = await startStandalone();
  });
  after(async () => {
    await redis.destroy();
  });

  for (const name of ['fastify', 'express']) {
    it(`examples/${name}.ts is in the README as written`, () => {
      const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
      const example = readFileSync(examplePath(name), 'utf8');
      assert.ok(readme.includes(`\`\`\`ts\n${example}\`\`\``), `README shows examples/${name}.ts verbatim`);
    });

    it(`examples/${name}.ts runs: sign in, CSRF, lock, sign out`, { timeout: 60_000 }, async () => {
      const child = spawn(process.execPath, [...TYPESCRIPT_NODE_ARGS, examplePath(name)], {
        env: {
          ...process.env,
          REDIS_URL: `redis://127.0.0.1:${String(redis.server.port)}`,
          SECRET_KEYS: randomBytes(32).toString('hex'),
          PORT: '0',
          COOKIE_SECURE: 'false',
          ORIGIN,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      try {
        const url = await new Promise<string>((resolve, reject) => {
          let stdout = '';
          child.stdout.on('data', (chunk: Buffer) => {
            stdout += chunk.toString();
            const match = /listening on (http:\/\/\S+)/.exec(stdout);
            if (match?.[1]) resolve(match[1]);
          });
          child.once('exit', () => {
            reject(new Error(`the example exited: ${stderr}`));
          });
        });

        const signin = await fetch(`${url}/signin`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ userId: 'example-user' }),
        });
        assert.equal(signin.status, 200, stderr);
        const cookie = (signin.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
        assert.match(cookie, /^gh_session=/);
        const { data } = (await signin.json()) as { data: { sessionToken: string; csrfToken: string } };

        const me = await fetch(`${url}/me`, { headers: { cookie } });
        assert.deepEqual(await me.json(), { success: true, data: { userId: 'example-user' } });

        const post = (headers: Record<string, string>) =>
          fetch(`${url}/notes`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', cookie, ...headers },
            body: '{}',
          });
        assert.equal((await post({ origin: ORIGIN })).status, 403, 'no CSRF token');
        assert.equal((await post({ origin: ORIGIN, 'x-csrf-token': data.csrfToken })).status, 201);

        const pdf = await fetch(`${url}/reports/7/pdf`, {
          method: 'POST',
          headers: { authorization: `Bearer ${data.sessionToken}` },
        });
        assert.equal(pdf.status, 200);

        const out = await fetch(`${url}/signout`, {
          method: 'POST',
          headers: { cookie, origin: ORIGIN, 'x-csrf-token': data.csrfToken },
        });
        assert.equal(out.status, 204);
        assert.equal((await fetch(`${url}/me`, { headers: { cookie } })).status, 401);
      } finally {
        const exited = once(child, 'exit');
        child.kill('SIGTERM');
        const [code] = (await exited) as [number | null];
        assert.ok(code === 0 || code === null, `exit code ${String(code)}: ${stderr}`);
      }
    });
  }
});
