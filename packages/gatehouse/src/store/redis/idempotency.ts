/** The idempotency records' store operations on Redis (the contract: ../idempotency-store.ts). */
import type { IdempotencyBegin, IdempotencyStore } from '../idempotency-store.js';
import { assertTtlMs } from '../ttl.js';
import type { RedisConnection } from './connection.js';
import { asBuffer, unexpectedReply } from './errors.js';
import * as lua from './scripts.generated.js';

export class RedisIdempotencyOperations implements IdempotencyStore {
  constructor(private readonly connection: RedisConnection) {}

  async beginIdempotent(id: string, bodyMac: string, inFlightTtlMs: number): Promise<IdempotencyBegin> {
    assertTtlMs(inFlightTtlMs);
    const reply = await this.connection.runScript(
      lua.beginIdempotent,
      [this.connection.keys.key('idem', id)],
      [bodyMac, String(inFlightTtlMs)],
      true,
    );
    if (!Array.isArray(reply)) throw unexpectedReply(lua.beginIdempotent, reply);
    const [state, response] = reply as unknown[];
    const name = Buffer.isBuffer(state) ? state.toString() : String(state);
    if (name === 'replay') return { state: 'replay', response: asBuffer(lua.beginIdempotent, response) };
    if (name === 'started' || name === 'in-progress' || name === 'mismatch') return { state: name };
    throw unexpectedReply(lua.beginIdempotent, reply);
  }

  async completeIdempotent(id: string, bodyMac: string, response: Buffer, ttlMs: number): Promise<boolean> {
    assertTtlMs(ttlMs);
    const reply = await this.connection.runScript(
      lua.completeIdempotent,
      [this.connection.keys.key('idem', id)],
      [bodyMac, response, String(ttlMs)],
    );
    return reply === 1;
  }

  async abandonIdempotent(id: string, bodyMac: string): Promise<boolean> {
    const reply = await this.connection.runScript(
      lua.abandonIdempotent,
      [this.connection.keys.key('idem', id)],
      [bodyMac],
    );
    return reply === 1;
  }
}
