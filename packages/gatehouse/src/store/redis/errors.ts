/**
 * What Redis answers, in the catalogue's terms (packages/gatehouse/src/errors.ts), and the checks
 * every operation applies to a script's reply.
 */
import { ErrorReply } from '@redis/client';

import {
  GatehouseError,
  StoreCommandError,
  StorePermissionError,
  StoreUnavailableError,
} from '../../errors.js';
import type { LuaScript } from './lua-script.js';

const UNAVAILABLE_REPLIES = [
  'LOADING',
  'BUSY',
  'MASTERDOWN',
  'CLUSTERDOWN',
  'TRYAGAIN',
  'READONLY',
  'OOM',
  'MISCONF',
];

/**
 * Maps anything node-redis throws to the catalogue. Permission problems are recognised in both
 * shapes Redis uses: `NOPERM` for commands and "can't access" for a key inside a Lua script; an
 * authentication failure is a permission problem too. Everything that is not a reply from the
 * server (timeouts, closed or offline sockets, unreachable nodes) means Redis is not answering.
 */
export function toStoreError(error: unknown): GatehouseError {
  if (error instanceof GatehouseError) return error;
  // Sentinel re-emits a node's error wrapped in a plain Error; classify the reply inside.
  if (!(error instanceof ErrorReply) && error instanceof Error && error.cause instanceof ErrorReply) {
    return toStoreError(error.cause);
  }
  if (error instanceof ErrorReply) {
    const message = error.message;
    if (/^(NOPERM|NOAUTH|WRONGPASS)\b/.test(message) || /can't access/i.test(message)) {
      return new StorePermissionError(`Redis refused the ACL user: ${message}`, { cause: error });
    }
    const word = /^[A-Z]+/.exec(message)?.[0] ?? '';
    if (UNAVAILABLE_REPLIES.includes(word)) {
      return new StoreUnavailableError(`Redis is not accepting commands: ${message}`, { cause: error });
    }
    return new StoreCommandError(`Redis refused a command: ${message}`, { cause: error });
  }
  const reason = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return new StoreUnavailableError(`Redis is not answering (${reason})`, { cause: error });
}

/** A bug in the caller (bad arguments), not a store problem: never reported as an outage. */
export function isProgrammingError(error: unknown): error is TypeError | RangeError {
  return error instanceof TypeError || error instanceof RangeError;
}

export function isNoScript(error: unknown): boolean {
  return error instanceof ErrorReply && error.message.startsWith('NOSCRIPT');
}

export function unexpectedReply(script: LuaScript, reply: unknown): StoreCommandError {
  return new StoreCommandError(`${script.name} returned an unexpected reply: ${JSON.stringify(reply)}`);
}

export function asBuffer(script: LuaScript, value: unknown): Buffer {
  if (!Buffer.isBuffer(value)) throw unexpectedReply(script, value);
  return value;
}

export function asStrings(script: LuaScript, value: unknown): string[] {
  if (!Array.isArray(value)) throw unexpectedReply(script, value);
  return value.map((item: unknown) => (Buffer.isBuffer(item) ? item.toString() : String(item)));
}
