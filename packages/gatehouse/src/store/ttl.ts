/** Checks a TTL argument (a programming error if wrong): every key gatehouse writes expires. */
export function assertTtlMs(ttlMs: number): void {
  if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0) {
    throw new RangeError(`ttlMs must be a positive integer of milliseconds, got ${String(ttlMs)}`);
  }
}
