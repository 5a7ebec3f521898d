/** The markers' store operations in memory (the contract: ../marker-store.ts). */
import type { MarkerArea, MarkerMode, MarkerStore } from '../marker-store.js';
import { assertTtlMs } from '../ttl.js';
import type { MemoryState } from './state.js';

export class MemoryMarkerOperations implements MarkerStore {
  constructor(private readonly state: MemoryState) {}

  setMarker(area: MarkerArea, id: string, value: string, ttlMs: number, mode: MarkerMode): Promise<boolean> {
    return this.state.operation(() => {
      assertTtlMs(ttlMs);
      const key = this.state.keys.key(area, id);
      const current = this.state.get(key);
      if (mode === 'if-new' && current !== undefined) return false;
      if (mode === 'if-greater' && typeof current === 'string' && Number(current) >= Number(value)) {
        this.state.extendTtl(key, ttlMs);
        return false;
      }
      this.state.set(key, value, ttlMs);
      return true;
    });
  }

  takeMarker(area: MarkerArea, id: string): Promise<string | null> {
    return this.state.operation(() => {
      const key = this.state.keys.key(area, id);
      const value = this.state.get(key);
      this.state.delete(key);
      return typeof value === 'string' ? value : null;
    });
  }

  getMarker(area: MarkerArea, id: string): Promise<string | null> {
    return this.state.operation(() => {
      const value = this.state.get(this.state.keys.key(area, id));
      return typeof value === 'string' ? value : null;
    });
  }
}
