/**
 * Runs `gatehouse serve` as a child process, as an operator would, on a free loopback port.
 */
import { spawn, type ChildProcess } from 'node:child_process';

import { freePort } from '../../../gatehouse/test/harness/redis-server.js';
import { TYPESCRIPT_NODE_ARGS } from '../../../gatehouse/test/harness/typescript.js';

const MAIN = new URL('../../src/cli/main.ts', import.meta.url).pathname;

export interface ServiceProcess {
  readonly child: ChildProcess;
  readonly base: string;
  /** Resolves with the exit code. */
  readonly exited: Promise<number>;
  /** Everything the process wrote (stdout and stderr). */
  output(): string;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number>;
}

/** Starts the service with exactly `env` (plus PATH, HOST and PORT) and waits until it listens. */
export async function spawnService(env: Record<string, string>): Promise<ServiceProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, [...TYPESCRIPT_NODE_ARGS, MAIN, 'serve'], {
    env: { PATH: process.env.PATH ?? '', PORT: String(port), HOST: '127.0.0.1', ...env },
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number>((resolve) => {
    child.once('exit', (code) => {
      resolve(code ?? -1);
    });
  });
  const base = `http://127.0.0.1:${String(port)}`;
  const deadline = Date.now() + 60_000;
  // Listening is when /health answers (whatever LOG_LEVEL lets the log say).
  for (;;) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`serve did not start:\n${output}`);
    }
    const answered = await fetch(`${base}/health`).then(
      (response) => response.ok,
      () => false,
    );
    if (answered) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    child,
    base,
    exited,
    output: () => output,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}
