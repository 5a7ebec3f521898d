#!/usr/bin/env node
/**
 * The `gatehouse` command. `serve` checks the configuration and the store; the reference
 * service itself lands with issue #8. `acl-rule` prints the least-privilege Redis ACL rule.
 */
import { parseArgs } from 'node:util';

import { describeStore, loadConfig } from '../config.js';
import { ConfigError } from '../errors.js';
import { aclRule } from '../store/acl.js';
import { createStore } from '../store/index.js';
import { isValidPrefix, PREFIX_EXPECTED } from '../store/keys.js';
import { createConsoleLogger } from '../util/logger.js';

const HELP = `Usage: gatehouse <command> [options]

Commands:
  serve              check the configuration and the store, then start the reference service
  acl-rule           print the least-privilege Redis ACL rule for gatehouse's user
                     (--prefix <prefix>, default gh)

Options:
  -h, --help         show this help

Configuration comes from environment variables; see the README.`;

async function serve(): Promise<number> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`gatehouse: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
  const logger = createConsoleLogger(config.logLevel);
  logger.info({ store: describeStore(config) }, 'configuration accepted');
  if (config.store.kind === 'memory') {
    logger.warn(
      {},
      'MEMORY STORE: sessions, rate limits, nonces and locks live in this process only; run one instance, or set REDIS_URL',
    );
  }
  const store = createStore({
    redis: config.store.kind === 'memory' ? 'memory' : config.store.connection,
    keyPrefix: config.keyPrefix,
    logger,
  });
  try {
    await store.waitUntilReady(3000);
    const health = await store.health();
    logger.info({ mode: health.mode, status: health.status, latencyMs: health.latencyMs }, 'store ready');
  } catch (error) {
    logger.error({ reason: error instanceof Error ? error.message : String(error) }, 'store not ready');
    return 1;
  } finally {
    await store.close();
  }
  process.stdout.write(
    'gatehouse: the reference service is not built yet (it lands with issue #8); the configuration and store checks above passed.\n',
  );
  return 0;
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { help: { type: 'boolean', short: 'h' }, prefix: { type: 'string' } },
    });
  } catch (error) {
    process.stderr.write(`gatehouse: ${error instanceof Error ? error.message : String(error)}\n\n${HELP}\n`);
    return 1;
  }
  const { values, positionals } = parsed;
  const command = positionals[0];
  if (values.help === true || command === undefined || command === 'help') {
    process.stdout.write(`${HELP}\n`);
    return command === undefined && values.help !== true ? 1 : 0;
  }
  switch (command) {
    case 'serve':
      return serve();
    case 'acl-rule': {
      const prefix = values.prefix ?? 'gh';
      if (!isValidPrefix(prefix)) {
        process.stderr.write(`gatehouse: --prefix must be ${PREFIX_EXPECTED}\n`);
        return 1;
      }
      process.stdout.write(`${aclRule(prefix)}\n`);
      return 0;
    }
    default:
      process.stderr.write(`gatehouse: unknown command "${command}"\n\n${HELP}\n`);
      return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(
      `gatehouse: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exitCode = 1;
  },
);
