/** Runs a `gatehouse` command in this process with its output and messages captured. */

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
