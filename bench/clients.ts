/**
 * node-redis clients for the contenders that are not gatehouse (raw commands and peer
 * libraries), configured as gatehouse configures its own: no per-command timeout signal.
 * node-redis's default (5 s) creates an AbortSignal timer per command, which costs more client
 * time than the command itself at these rates; gatehouse keeps one deadline sweeper instead.
 * Giving the other contenders the same setting keeps the comparison about the work, not the
 * client option.
 */
import { createClient } from '@redis/client';

export function benchClient(port: number) {
  return createClient({
    socket: { host: '127.0.0.1', port },
    disableOfflineQueue: true,
    commandOptions: { timeout: 0 },
  });
}
