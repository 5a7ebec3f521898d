/**
 * A TCP proxy to a loopback Redis that counts what its clients send, to count round trips rather
 * than guess them (the HTTP benchmark and the round-trip tests use it).
 */
import { createConnection, createServer, type Server } from 'node:net';

/** Chunks from one client closer together than this, with no reply between, are one round trip. */
const ROUND_TRIP_GAP_MS = 1;

/**
 * A TCP proxy to Redis that counts what its clients send. `writes` counts chunks as they arrive
 * (one write may arrive as several); `roundTrips` counts turns: a chunk starts a new round trip
 * when Redis has answered on that connection since the client's last chunk, or when that chunk
 * came more than ROUND_TRIP_GAP_MS ago (pipelined commands sent while earlier replies are
 * outstanding are round trips too, if they were sent apart).
 */
export async function countingProxy(
  redisPort: number,
): Promise<{ port: number; writes(): number; roundTrips(): number; close(): void }> {
  let writes = 0;
  let roundTrips = 0;
  const server: Server = createServer((client) => {
    const upstream = createConnection({ host: '127.0.0.1', port: redisPort });
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    let answeredSinceLastWrite = true;
    let lastWriteMs = 0;
    client.on('data', (chunk) => {
      const now = performance.now();
      writes += 1;
      if (answeredSinceLastWrite || now - lastWriteMs > ROUND_TRIP_GAP_MS) roundTrips += 1;
      answeredSinceLastWrite = false;
      lastWriteMs = now;
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      answeredSinceLastWrite = true;
      client.write(chunk);
    });
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address !== 'object') throw new Error('proxy has no port');
  return {
    port: address.port,
    writes: () => writes,
    roundTrips: () => roundTrips,
    close: () => server.close(),
  };
}
