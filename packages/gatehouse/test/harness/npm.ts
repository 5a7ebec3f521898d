/**
 * Running npm from a test as a user would, with the Node.js the tests run on: its directory
 * first on PATH, so that npm (a Node script) and whatever npm starts use the same Node.js as
 * the test (the matrix runs the tests on several versions, scripts/test-matrix.mjs).
 */
import { dirname } from 'node:path';

/** `env` with PATH led by the running Node.js, and npm's update check off. */
export function npmEnvironment(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return {
    ...env,
    PATH: `${dirname(process.execPath)}:${env.PATH ?? ''}`,
    npm_config_update_notifier: 'false',
  };
}
