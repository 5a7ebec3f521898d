// Loaded with --import: appends the URL of every module the process loads to $MODULE_LOG, so a
// test can see what a command pulls in (packages/server/test/cli/cli.test.ts).
import { register } from 'node:module';

register('./record-modules-hooks.mjs', import.meta.url);
