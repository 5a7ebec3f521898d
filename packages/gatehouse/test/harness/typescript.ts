/**
 * How a test starts a TypeScript program as a child process: through tsx, with `gatehouse` and
 * its subpaths resolved to the library's source (the `gatehouse-source` condition of
 * packages/gatehouse/package.json), as the test runner itself runs (scripts/run-tests.mjs).
 */
export const TYPESCRIPT_NODE_ARGS: readonly string[] = ['--conditions=gatehouse-source', '--import', 'tsx'];
