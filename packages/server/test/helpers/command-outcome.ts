/**
 * Runs a `gatehouse` command with its output and messages captured: in this process
 * (`runCaptured`), or as the program itself (`runProgram`).
 */
import { spawn } from 'node:child_process';

import { TYPESCRIPT_NODE_ARGS } from '../../../gatehouse/test/harness/typescript.js';

const MAIN = new URL('../../src/cli/main.ts', import.meta.url).pathname;

export interface Outcome {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** A command as packages/server/src/cli/ exports them: `argv` without its name, `env`, writers. */
export type Command = (
  argv: string[],
  env: Record<string, string | undefined>,
  write: (text: string) => void,
  writeError: (text: string) => void,
) => Promise<number>;

export async function runCaptured(
  command: Command,
  argv: string[],
  env: Record<string, string | undefined>,
): Promise<Outcome> {
  let stdout = '';
  let stderr = '';
  const code = await command(
    argv,
    env,
    (text) => {
      stdout += text;
    },
    (text) => {
      stderr += text;
    },
  );
  return { code, stdout, stderr };
}

/**
 * The `gatehouse` program as a process, with exactly `env` (plus PATH), never the test process's
 * own environment; `nodeArgs` go to Node before the program. Resolves when it exits.
 */
export function runProgram(
  args: string[],
  env: Record<string, string> = {},
  nodeArgs: readonly string[] = [],
): Promise<Outcome & { readonly exitedAtMs: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...TYPESCRIPT_NODE_ARGS, ...nodeArgs, MAIN, ...args], {
      env: { PATH: process.env.PATH ?? '', ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('exit', (code) => {
      resolve({ code: code ?? -1, stdout, stderr, exitedAtMs: Date.now() });
    });
  });
}
