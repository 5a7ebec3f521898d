#!/usr/bin/env node
/**
 * The `gatehouse` command. `serve` runs the reference service (what `npm start` runs);
 * `acl-rule` prints the least-privilege Redis ACL rule.
 */
import { parseArgs } from 'node:util';

import { describeStore, loadConfig } from '../config.js';
import { ConfigError } from '../errors.js';
import { createService } from '../service/app.js';
import { loadOrCreateDevKeys } from '../service/dev-keys.js';
import { aclRule } from '../store/acl.js';
import { doctorCommand } from './doctor.js';
import { sessionsCommand } from './sessions.js';
import { isValidPrefix, PREFIX_EXPECTED } from '../store/keys.js';
import { createConsoleLogger } from '../util/logger.js';

const HELP = `Usage: gatehouse <command> [options]

Commands:
  serve              run the reference service (same as npm start); configuration from the environment
  doctor             audit a Redis deployment against the hardening checklist for health data
                     (--redis-url <url>, --json; exit 1 when a check fails; --help for more)
  sessions           list or end a user's sessions by hand: sessions list --user <id>,
                     sessions revoke <handle>, sessions revoke-all --user <id> (--help for more)
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
      'MEMORY STORE: sessions, rate limits, nonces and locks live in this process only; run ONE instance, or set REDIS_URL',
    );
  }
  let secretKeys = config.secretKeys;
  if (!secretKeys) {
    const dev = loadOrCreateDevKeys(config.dataDir);
    logger.warn(
      { dataDir: config.dataDir },
      dev.created
        ? 'no SECRET_KEYS: generated a development key into DATA_DIR (production requires SECRET_KEYS)'
        : 'no SECRET_KEYS: using the development key in DATA_DIR (production requires SECRET_KEYS)',
    );
    secretKeys = dev.keys;
  }
  const service = await createService(config, { secretKeys });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    service.app.log.info({ signal }, 'draining in-flight requests, then closing Redis and the database');
    // A second signal, or a drain that hangs, ends the process anyway.
    const force = setTimeout(() => {
      service.app.log.error({}, 'drain took too long; exiting');
      process.exit(1);
    }, 25_000);
    force.unref();
    service.close().then(
      () => {
        service.app.log.info({}, 'stopped');
        process.exitCode = 0;
      },
      (error: unknown) => {
        service.app.log.error({ err: error }, 'could not close cleanly');
        process.exitCode = 1;
      },
    );
  };
  process.once('SIGTERM', () => {
    stop('SIGTERM');
  });
  process.once('SIGINT', () => {
    stop('SIGINT');
  });
  try {
    const address = await service.app.listen({ host: config.host, port: config.port });
    service.app.log.info(
      { address, database: service.context.db.kind },
      'gatehouse reference service listening',
    );
  } catch (error) {
    service.app.log.error({ err: error }, 'could not listen');
    await service.close();
    return 1;
  }
  return 0;
}

async function main(argv: string[]): Promise<number> {
  // Commands with options of their own parse them themselves.
  if (argv[0] === 'sessions') return sessionsCommand(argv.slice(1), process.env);
  if (argv[0] === 'doctor') return doctorCommand(argv.slice(1), process.env);
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
