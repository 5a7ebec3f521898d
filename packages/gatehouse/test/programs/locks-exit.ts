/**
 * Runs withLock calls that succeed, are refused, throw, and lose their lock, plus waits that time
 * out and are aborted, then closes the store and does nothing else: the process must exit by
 * itself, which proves no timer or listener outlived the calls. Redis when REDIS_PORT is set,
 * the memory store otherwise.
 */
import { KeyRing } from '../../src/crypto/keyring.js';
import { LockHeldError, LockLostError } from '../../src/errors.js';
import { Locks } from '../../src/locks/locks.js';
import { MemoryStore } from '../../src/store/memory/store.js';
import { RedisStore } from '../../src/store/redis/store.js';

const port = process.env.REDIS_PORT;
const store = port
  ? new RedisStore({ connection: { topology: 'standalone', host: '127.0.0.1', port: Number(port) } })
  : new MemoryStore();
await store.waitUntilReady(5000);
const locks = new Locks(store, KeyRing.random());
const resource = `exit-check:${String(process.pid)}`;

const outcomes: string[] = [];
outcomes.push(await locks.withLock(resource, () => 'succeeded', { ttl: '300ms' }));
await locks.withLock(
  resource,
  async () => {
    try {
      await locks.withLock(resource, () => 'never', { wait: '100ms' });
    } catch (error) {
      if (error instanceof LockHeldError) outcomes.push('refused');
    }
    await new Promise((resolve) => setTimeout(resolve, 700)); // renews meanwhile
  },
  { ttl: '600ms' },
);
try {
  await locks.withLock(resource, () => {
    throw new Error('threw');
  });
} catch (error) {
  outcomes.push((error as Error).message);
}
try {
  await locks.withLock(
    resource,
    ({ signal }) =>
      new Promise((resolve) => {
        signal.addEventListener('abort', resolve);
      }),
    {
      ttl: '1s',
      maxHold: '100ms',
    },
  );
} catch (error) {
  if (error instanceof LockLostError) outcomes.push('lost');
}
const held = await locks.tryAcquire(resource, { ttl: '5s' });
const controller = new AbortController();
setTimeout(() => {
  controller.abort(new Error('aborted'));
}, 50);
try {
  await locks.acquire(resource, { wait: '5s', signal: controller.signal });
} catch (error) {
  outcomes.push((error as Error).message);
}
if (held.acquired) await held.release();
await store.close();
process.stdout.write(`${outcomes.join(',')}\n`);
