/**
 * Who may do what: no access without credentials, the default user off, the app on its own
 * least-privilege ACL user (asked with ACL DRYRUN, never tried), no shared requirepass, and no
 * pub/sub channels for new ACL users by default.
 */
import { ErrorReply } from '@redis/client';

import { aclRule } from 'gatehouse';

import { eitherOf, pass, type CheckDefinition, type NodeContext } from '../check.js';
import { CommandFailedError, CommandRefusedError, errorText } from '../errors.js';
import {
  connectionProblem,
  openClient,
  withTimeout,
  type AuditClient,
  type NodeSession,
} from '../node-session.js';
import { asList, asPairs, asText, type Reply } from '../replies.js';

/** The gatehouse rule for a user, or a pointer to the command that prints it. */
function ruleFor(prefix: string): string {
  try {
    return aclRule(prefix);
  } catch {
    return `<the output of: gatehouse acl-rule --prefix ${prefix}>`;
  }
}

/** The connected ACL user: ACL WHOAMI, or, when that is refused, the user the connection logged in as. */
export async function connectedUser(node: NodeSession): Promise<{ name: string; fromSettings: boolean }> {
  try {
    return { name: asText(await node.cached(['ACL', 'WHOAMI'])), fromSettings: false };
  } catch (error) {
    if (!(error instanceof CommandRefusedError)) throw error;
    return { name: node.target.username ?? 'default', fromSettings: true };
  }
}

const DEFAULT_USER_FIX =
  'turn the default user off (`user default off` in the ACL file, or ACL SETUSER default off) and give every client its own ACL user with a password';

/** Dry-run probes: each must be denied to the app user. */
function privilegeProbes(prefix: string): Array<{ label: string; args: string[] }> {
  const outside = `not-${prefix}:doctor-probe`;
  return [
    { label: 'FLUSHALL', args: ['FLUSHALL'] },
    { label: 'CONFIG SET', args: ['CONFIG', 'SET', 'maxmemory-policy', 'noeviction'] },
    { label: 'DEBUG SLEEP 0', args: ['DEBUG', 'SLEEP', '0'] },
    { label: 'KEYS *', args: ['KEYS', '*'] },
    { label: 'MODULE LIST', args: ['MODULE', 'LIST'] },
    { label: 'ACL SETUSER', args: ['ACL', 'SETUSER', 'gh-doctor-probe'] },
    { label: `GET on a key outside ${prefix}:*`, args: ['GET', outside] },
    { label: `PUBLISH to a channel outside ${prefix}:*`, args: ['PUBLISH', outside, 'x'] },
  ];
}

export const ANONYMOUS_ACCESS_CHECK: CheckDefinition<NodeContext> = {
  id: 'anonymous-access',
  title: 'No access without credentials',
  run: async ({ node, timeoutMs }) => {
    let client: AuditClient;
    try {
      client = await openClient(node.target, false, timeoutMs);
    } catch (error) {
      return {
        status: 'warn',
        reason: `could not open a connection without credentials to test: ${connectionProblem(error, node.target, timeoutMs)}`,
      };
    }
    try {
      const reply = await withTimeout(
        client.sendCommand(['PING']),
        timeoutMs,
        `PING did not answer within ${String(timeoutMs)} ms`,
      );
      return {
        status: 'fail',
        reason: `a connection without credentials answered PING (${asText(reply)}): anyone who can reach the port can read and write`,
        fix: DEFAULT_USER_FIX,
      };
    } catch (error) {
      if (error instanceof ErrorReply && /^(NOAUTH|WRONGPASS)\b/.test(error.message)) {
        return pass(`a connection without credentials is refused (${error.message.split(' ')[0] ?? ''})`);
      }
      if (error instanceof ErrorReply && /^NOPERM\b/.test(error.message)) {
        return {
          status: 'warn',
          reason:
            'a connection without credentials is logged in as the default user (PING is refused by its ACL rules, other commands may not be)',
          fix: DEFAULT_USER_FIX,
        };
      }
      return { status: 'warn', reason: `could not test: ${errorText(error)}` };
    } finally {
      client.destroy();
    }
  },
};

export const DEFAULT_USER_CHECK: CheckDefinition<NodeContext> = {
  id: 'default-user',
  title: 'The default user is off',
  run: async ({ node }) => {
    const { flags, hasPassword } = await eitherOf(
      async () => {
        const user = asPairs(await node.cached(['ACL', 'GETUSER', 'default']));
        return {
          flags: asList(user.get('flags')).map(asText),
          hasPassword: asList(user.get('passwords')).length > 0,
        };
      },
      async () => {
        // ACL LIST says the same in one line per user.
        const lines = asList(await node.cached(['ACL', 'LIST'])).map(asText);
        const words = (lines.find((line) => line.startsWith('user default ')) ?? '').split(' ');
        return {
          flags: words.filter((word) => ['on', 'off', 'nopass'].includes(word)),
          hasPassword: words.some((word) => word.startsWith('#') || word.startsWith('>')),
        };
      },
    );
    if (flags.includes('off') || !flags.includes('on')) return pass('the default user is off');
    if (flags.includes('nopass') || !hasPassword) {
      return {
        status: 'fail',
        reason:
          'the default user is on without a password: every connection is logged in as it before any AUTH',
        fix: DEFAULT_USER_FIX,
      };
    }
    return {
      status: 'warn',
      reason: 'the default user is on with a password (a shared secret, e.g. requirepass)',
      fix: DEFAULT_USER_FIX,
    };
  },
};

export const APP_USER_CHECK: CheckDefinition<NodeContext> = {
  id: 'app-user',
  title: 'The app has its own ACL user',
  run: async ({ node, appUser, keyPrefix }) => {
    const connected = await connectedUser(node);
    const createFix = `create a user for the app, e.g. ACL SETUSER gatehouse on >PASSWORD ${ruleFor(keyPrefix)}; then set REDIS_USERNAME and REDIS_PASSWORD`;
    const user = appUser ?? connected.name;
    if (user === 'default') {
      return {
        status: 'fail',
        reason: `${appUser === undefined ? 'connected as' : 'the app user is'} the default user: the app should use its own ACL user`,
        fix: createFix,
      };
    }
    if (appUser === undefined) {
      return pass(
        `connected as ACL user '${user}'${
          connected.fromSettings ? ' (from the connection settings: ACL WHOAMI is not permitted)' : ''
        }`,
      );
    }
    let details: Map<string, Reply> | undefined;
    try {
      const reply = await node.cached(['ACL', 'GETUSER', appUser]);
      if (reply === null) {
        return {
          status: 'fail',
          reason: `there is no ACL user '${appUser}' on this server`,
          fix: createFix,
        };
      }
      details = asPairs(reply);
    } catch (error) {
      if (!(error instanceof CommandRefusedError)) throw error;
      return pass(`the app user is '${appUser}' (its existence not verified: ACL GETUSER is not permitted)`);
    }
    const flags = asList(details.get('flags')).map(asText);
    if (!flags.includes('on')) {
      return {
        status: 'fail',
        reason: `ACL user '${appUser}' is off: the app cannot log in`,
        fix: `ACL SETUSER ${appUser} on`,
      };
    }
    return pass(`the app user is '${appUser}' (audited as '${connected.name}')`);
  },
};

export const LEAST_PRIVILEGE_CHECK: CheckDefinition<NodeContext> = {
  id: 'least-privilege',
  title: 'The app user is least-privilege',
  run: async ({ node, appUser, keyPrefix }) => {
    const user = appUser ?? (await connectedUser(node)).name;
    const allowed: string[] = [];
    for (const probe of privilegeProbes(keyPrefix)) {
      let reply: Reply;
      try {
        reply = await node.send(['ACL', 'DRYRUN', user, ...probe.args]);
      } catch (error) {
        if (error instanceof CommandFailedError && /User .* not found/i.test(error.message)) {
          return {
            status: 'fail',
            reason: `there is no ACL user '${user}' on this server`,
            fix: `create it: ACL SETUSER ${user} on >PASSWORD ${ruleFor(keyPrefix)}`,
          };
        }
        throw error;
      }
      if (asText(reply) === 'OK') allowed.push(probe.label);
    }
    if (allowed.length > 0) {
      return {
        status: 'fail',
        reason: `ACL user '${user}' may run ${allowed.join(', ')} (each must be denied)`,
        fix:
          user === 'default'
            ? `give the app its own user with gatehouse's rule: ACL SETUSER gatehouse on >PASSWORD ${ruleFor(keyPrefix)}`
            : `restrict it to gatehouse's rule (passwords are kept): ACL SETUSER ${user} ${ruleFor(keyPrefix)}`,
      };
    }
    return pass(
      `ACL user '${user}' is denied FLUSHALL, CONFIG SET, DEBUG, KEYS, MODULE, ACL SETUSER and keys and channels outside ${keyPrefix}:*`,
    );
  },
};

export const REQUIREPASS_CHECK: CheckDefinition<NodeContext> = {
  id: 'requirepass',
  title: 'No shared requirepass',
  run: async ({ node }) => {
    const value = (await node.config('requirepass')) ?? '';
    if (value === '') return pass('requirepass is not set');
    return {
      status: 'warn',
      reason: `requirepass is set (${String(value.length)} characters): a shared password kept in clear in the configuration`,
      fix: 'remove requirepass (from redis.conf, and CONFIG SET requirepass ""), turn the default user off and use ACL users with hashed passwords (#<sha256> in the ACL file)',
    };
  },
};

export const PUBSUB_DEFAULT_CHECK: CheckDefinition<NodeContext> = {
  id: 'pubsub-default',
  title: 'New ACL users get no channels',
  run: async ({ node }) => {
    const value = (await node.config('acl-pubsub-default')) ?? 'unknown';
    if (value === 'resetchannels') return pass('acl-pubsub-default resetchannels');
    return {
      status: 'warn',
      reason: `acl-pubsub-default ${value}: new ACL users may use every pub/sub channel unless their rule says resetchannels`,
      fix: 'set acl-pubsub-default resetchannels',
    };
  },
};
