/** The markers' store operations on Redis (the contract: ../marker-store.ts), one script each. */
import type { MarkerArea, MarkerMode, MarkerStore } from '../marker-store.js';
import { assertTtlMs } from '../ttl.js';
import type { RedisConnection } from './connection.js';
import * as lua from './scripts.generated.js';

export class RedisMarkerOperations implements MarkerStore {
  constructor(private readonly connection: RedisConnection) {}

  async setMarker(
    area: MarkerArea,
    id: string,
    value: string,
    ttlMs: number,
    mode: MarkerMode,
  ): Promise<boolean> {
    assertTtlMs(ttlMs);
    const reply = await this.connection.runScript(
      lua.setMarker,
      [this.connection.keys.key(area, id)],
      [value, String(ttlMs), mode],
    );
    return reply === 1;
  }

  async takeMarker(area: MarkerArea, id: string): Promise<string | null> {
    const reply = await this.connection.runScript(lua.takeMarker, [this.connection.keys.key(area, id)], []);
    return typeof reply === 'string' && reply !== '' ? reply : null;
  }

  async getMarker(area: MarkerArea, id: string): Promise<string | null> {
    const reply = await this.connection.runScript(lua.getMarker, [this.connection.keys.key(area, id)], []);
    return typeof reply === 'string' && reply !== '' ? reply : null;
  }
}
