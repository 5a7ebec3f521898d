#!/usr/bin/env node
/**
 * The `gatehouse` command. `serve` runs the reference service (what `npm start` runs);
 * `sessions` and `users` act on its sessions and roles; `acl-rule` prints the least-privilege
 * Redis ACL rule. Each command loads only what it needs:
 * `doctor` and `acl-rule` load the Redis client and nothing of the service (no database, no
 * Fastify).
 */
import { parseArgs } from 'node:util';

import { aclRule, isValidKeyPrefix, KEY_PREFIX_EXPECTED } from 'gatehouse';

const HELP = `Usage: gatehouse <command> [options]

Commands:
  serve              run the reference service (same as npm start); configuration from the environment
  doctor             audit a Redis deployment against the hardening checklist for health data
                     (--redis-url <url>, --json; exit 1 when a check fails; --help for more)
  sessions           list or end a user's sessions by hand: sessions list --user <id>,
                     sessions revoke <handle>, sessions revoke-all --user <id> (--help for more)
  users              give or take away the admin role (the /admin dashboard), ending the user's
                     sessions: users grant-role EMAIL admin, users revoke-role EMAIL admin
  audit verify       check the whole audit chain of the service's database (--anchor <id>:<hash>;
                     exit 1 naming the first row that does not verify; --help for more)
  acl-rule           print the least-privilege Redis ACL rule for gatehouse's user
                     (--prefix <prefix>, default gh)

Options:
  -h, --help         show this help

Configuration comes from environment variables; see docs/configuration.md.`;

async function main(argv: string[]): Promise<number> {
  // Commands with options of their own parse them themselves.
  if (argv[0] === 'sessions') {
    const { sessionsCommand } = await import('./sessions.js');
    return sessionsCommand(argv.slice(1), process.env);
  }
  if (argv[0] === 'users') {
    const { usersCommand } = await import('./users.js');
    return usersCommand(argv.slice(1), process.env);
  }
  if (argv[0] === 'audit') {
    const { auditCommand } = await import('./audit.js');
    return auditCommand(argv.slice(1), process.env);
  }
  if (argv[0] === 'doctor') {
    const { doctorCommand } = await import('./doctor.js');
    return doctorCommand(argv.slice(1), process.env);
  }
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
    case 'serve': {
      const { serveCommand } = await import('./serve.js');
      return serveCommand();
    }
    case 'acl-rule': {
      const prefix = values.prefix ?? 'gh';
      if (!isValidKeyPrefix(prefix)) {
        process.stderr.write(`gatehouse: --prefix must be ${KEY_PREFIX_EXPECTED}\n`);
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
