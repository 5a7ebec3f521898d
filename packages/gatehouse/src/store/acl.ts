/**
 * The least-privilege Redis ACL rule for gatehouse: only its key and channel prefix, only the
 * commands it sends. The command list is derived from the Lua scripts themselves (every
 * `redis.call('X', ...)`) plus what the client sends around them, so it cannot drift from the
 * code; a test connects as a user with exactly this rule and runs every operation.
 */
import { LUA_SCRIPTS } from './redis/scripts.generated.js';

/** Commands sent outside scripts: the handshake, health, scripts, reading a user's sessions, and Cluster topology discovery. */
export const CLIENT_COMMANDS = [
  'hello',
  'auth',
  'ping',
  'select',
  'evalsha',
  'eval',
  'mget',
  'del',
  'publish',
  'subscribe',
  'unsubscribe',
  'spublish',
  'ssubscribe',
  'sunsubscribe',
  'cluster|slots',
  'cluster|shards',
] as const;

/** Commands the shipped Lua scripts call, lower-cased and sorted. */
export function scriptCommands(): string[] {
  const commands = new Set<string>();
  for (const { source } of LUA_SCRIPTS) {
    for (const match of source.matchAll(/redis\.p?call\(\s*'([A-Za-z]+)'/g)) {
      commands.add((match[1] ?? '').toLowerCase());
    }
  }
  return [...commands].sort();
}

/**
 * ACL rule (without the password) for a gatehouse user under `prefix`, e.g. for
 * `ACL SETUSER gatehouse on >secret <rule>` or a `user gatehouse on >secret <rule>` line in an ACL file.
 */
export function aclRule(prefix = 'gh'): string {
  const commands = [...new Set<string>([...CLIENT_COMMANDS, ...scriptCommands()])];
  return [
    'resetkeys',
    `~${prefix}:*`,
    'resetchannels',
    `&${prefix}:*`,
    '-@all',
    ...commands.map((command) => `+${command}`),
  ].join(' ');
}
