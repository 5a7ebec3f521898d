/**
 * `gatehouse serve`: the reference service on the configuration from the environment (what
 * `npm start` runs), drained on SIGTERM.
 */
import { ConfigError } from 'gatehouse';

import { describeStore, loadConfig } from '../config.js';
import { createServiceLogger } from '../logger.js';
import { createService } from '../service/app.js';
import { loadOrCreateDevKeys } from '../service/dev-keys.js';

/** Runs the service until SIGTERM or SIGINT; every line it writes is one JSON log line. */
export async function serveCommand(): Promise<number> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      // The level is not known yet: a refusal is written at any level but silent.
      createServiceLogger('info').fatal({ problems: error.problems }, error.message);
      return 1;
    }
    throw error;
  }
  const logger = createServiceLogger(config.logLevel);
  logger.info({ store: describeStore(config), nodeEnv: config.nodeEnv }, 'configuration accepted');
  if (config.nodeEnvDefaulted) {
    logger.warn(
      {},
      'NODE_ENV is unset: running as development (production guard rails off); set NODE_ENV=production in deployments',
    );
  }
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
  let service;
  try {
    service = await createService(config, { secretKeys, logger });
  } catch (error) {
    logger.fatal({ err: error }, 'could not start');
    return 1;
  }
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
