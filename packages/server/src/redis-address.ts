/**
 * Redis addresses as the environment writes them (`host:port` lists), and the checks the
 * production guard and the doctor make on them. Connection options themselves are the library's
 * (`RedisConnectionOptions`), and so is `isLoopbackHost`.
 */
import type { HostPort, RedisConnectionOptions } from 'gatehouse';

/** `host:port` (IPv6 as `[::1]:6379`), or `null` when the text is not one. */
export function parseHostPort(text: string): HostPort | null {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9_.-]+)):(\d{1,5})$/.exec(text.trim());
  if (!match) return null;
  const port = Number(match[3]);
  if (port < 1 || port > 65535) return null;
  return { host: match[1] ?? match[2] ?? '', port };
}

/** Every host the options name, for guards and for log lines (never with credentials). */
export function redisHosts(options: RedisConnectionOptions): readonly HostPort[] {
  switch (options.topology) {
    case 'standalone':
      return [{ host: options.host, port: options.port }];
    case 'sentinel':
      return options.sentinels;
    case 'cluster':
      return options.nodes;
  }
}
