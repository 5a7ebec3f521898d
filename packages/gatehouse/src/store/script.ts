/**
 * Lua scripts, one `.lua` file per atomic operation in src/lua/ (copied to dist/lua/ by the
 * build). Each file starts with a header documenting KEYS, ARGV (with units) and the reply; a
 * test checks the header and that every key a script touches comes from KEYS.
 *
 * Scripts are read and hashed once, at import. RedisStore runs them with EVALSHA and falls back
 * to EVAL (which also caches the script on that node) when the node answers NOSCRIPT: after a
 * restart, a `SCRIPT FLUSH`, a failover, or on a Cluster node that has not seen it yet.
 */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';

export interface LuaScript {
  readonly name: string;
  readonly source: string;
  readonly sha1: string;
  /** How many keys each call passes; `variadic` for scripts that take one key per item. */
  readonly numberOfKeys: number | 'variadic';
}

/** Folder of the .lua files: src/lua beside src/store when run from source, dist/lua when built. */
export const LUA_DIR = new URL('../lua/', import.meta.url);

const defined = new Map<string, LuaScript>();

/** Loads `<name>.lua`; `numberOfKeys` is checked against every call so a key can never slip into ARGV. */
export function defineScript(name: string, numberOfKeys: number | 'variadic'): LuaScript {
  const existing = defined.get(name);
  if (existing) return existing;
  const source = readFileSync(new URL(`${name}.lua`, LUA_DIR), 'utf8');
  const script = Object.freeze({
    name,
    source,
    sha1: createHash('sha1').update(source).digest('hex'),
    numberOfKeys,
  });
  defined.set(name, script);
  return script;
}

/** Every script defined so far (for tests that prove each one ran on Redis Cluster). */
export function definedScripts(): readonly LuaScript[] {
  return [...defined.values()];
}

/** Names of every .lua file shipped, whether or not a module has defined it yet. */
export function luaScriptNames(): string[] {
  return readdirSync(LUA_DIR)
    .filter((file) => file.endsWith('.lua'))
    .map((file) => file.slice(0, -'.lua'.length))
    .sort();
}
