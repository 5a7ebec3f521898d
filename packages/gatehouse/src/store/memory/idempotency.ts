/** The idempotency records' store operations in memory (the contract: ../idempotency-store.ts). */
import type { IdempotencyBegin, IdempotencyStore } from '../idempotency-store.js';
import type { MemoryState } from './state.js';

export class MemoryIdempotencyOperations implements IdempotencyStore {
  constructor(private readonly state: MemoryState) {}

  beginIdempotent(id: string, bodyMac: string, inFlightTtlMs: number): Promise<IdempotencyBegin> {
    return this.state.operation((): IdempotencyBegin => {
      const key = this.state.keys.key('idem', id);
      const value = this.state.get(key);
      if (!Buffer.isBuffer(value)) {
        this.state.set(key, Buffer.from(`r${bodyMac}`), inFlightTtlMs);
        return { state: 'started' };
      }
      if (value.subarray(1, 23).toString() !== bodyMac) return { state: 'mismatch' };
      if (value[0] === 0x72) return { state: 'in-progress' };
      return { state: 'replay', response: Buffer.from(value.subarray(23)) };
    });
  }

  completeIdempotent(id: string, bodyMac: string, response: Buffer, ttlMs: number): Promise<boolean> {
    return this.state.operation(() => {
      const key = this.state.keys.key('idem', id);
      const value = this.state.get(key);
      if (!Buffer.isBuffer(value) || value.toString('latin1') !== `r${bodyMac}`) return false;
      this.state.set(key, Buffer.concat([Buffer.from(`d${bodyMac}`), response]), ttlMs);
      return true;
    });
  }

  abandonIdempotent(id: string, bodyMac: string): Promise<boolean> {
    return this.state.operation(() => {
      const key = this.state.keys.key('idem', id);
      const value = this.state.get(key);
      if (!Buffer.isBuffer(value) || value.toString('latin1') !== `r${bodyMac}`) return false;
      this.state.delete(key);
      return true;
    });
  }
}
