/** Bounded waits for the operations routes: an answer within a budget, whatever a dependency does. */

/**
 * Resolves to `fallback` when `promise` fails or takes longer than `ms` (the promise runs on,
 * ignored); the timer never outlives the answer.
 */
export function within<T>(promise: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<T>((resolve) => {
    timer = setTimeout(() => {
      resolve(fallback);
    }, ms);
  });
  return Promise.race([promise.catch(() => fallback), timeout]).finally(() => {
    clearTimeout(timer);
  });
}
