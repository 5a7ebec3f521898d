/**
 * A Lua script as RedisStore runs it: one per store operation, generated from
 * packages/gatehouse/src/lua/ into ./scripts.generated.ts by scripts/generate-lua.mjs (shared
 * pieces included at build time). RedisStore runs a script with EVALSHA and falls back to EVAL
 * (which also caches it on that node) when the node answers NOSCRIPT: after a restart, a
 * `SCRIPT FLUSH`, a failover, or on a Cluster node that has not seen it yet.
 */
export interface LuaScript {
  /** The store operation's name, which is also the .lua file's. */
  readonly name: string;
  /** The script with its includes. */
  readonly source: string;
  readonly sha1: string;
  /** How many keys each call passes; `variadic` for scripts that take one key per item. */
  readonly numberOfKeys: number | 'variadic';
}
