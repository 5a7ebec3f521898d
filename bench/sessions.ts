/**
 * Session benchmarks, all in one run from one process against one redis-server started here:
 *
 * - throughput of `sessions.validate(token)`, of raw node-redis sending the very same command
 *   (EVALSHA of validateSession.lua with the same keys and arguments, binary replies, no hashing,
 *   no decryption, nothing of gatehouse around it), and of connect-redis's `get`;
 * - Redis memory per session (the session key and its share of the user's index), measured with
 *   MEMORY USAGE over 10,000 sessions of 2,000 users with a typical payload.
 *
 * Contenders run in interleaved rounds (A B C, A B C, ...) and the median round counts, so
 * drift on a shared machine hits all of them alike. Only ratios from the same run are compared.
 */
import { randomUUID } from 'node:crypto';

import { RedisStore as ConnectRedisStore } from 'connect-redis';
import { createClient, RESP_TYPES } from '@redis/client';

import { KeyRing } from '../packages/gatehouse/src/crypto/keyring.js';
import { refFromToken, Sessions } from '../packages/gatehouse/src/sessions/sessions.js';
import { RedisStore } from '../packages/gatehouse/src/store/redis/store.js';
import * as lua from '../packages/gatehouse/src/store/redis/scripts.generated.js';
import { sessionKeys } from '../packages/gatehouse/src/store/session-keys.js';
import { RedisServer } from '../packages/gatehouse/test/harness/redis-server.js';
import { benchClient } from './clients.js';
import { interleave, type ThroughputResult } from './measure.js';

const USER_AGENT =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124';

export interface SessionBenchResult {
  readonly throughput: ThroughputResult[];
  readonly memory: {
    sessions: number;
    users: number;
    bytesPerSession: number;
    sessionKeyBytes: number;
    indexBytesPerSession: number;
  };
}

export async function runSessionBench(options: {
  rounds: number;
  roundMs: number;
  concurrency: number;
}): Promise<SessionBenchResult> {
  const server = await RedisServer.start({ name: 'bench' });
  const connection = { topology: 'standalone' as const, host: '127.0.0.1', port: server.port };
  const store = new RedisStore({ connection, keyPrefix: 'gh' });
  const raw = benchClient(server.port);
  const connectClient = benchClient(server.port);
  try {
    await store.waitUntilReady(5000);
    await raw.connect();
    await connectClient.connect();
    const keyRing = KeyRing.random();
    const sessions = new Sessions(store, keyRing, { touchInterval: '60s' });
    const uncached = new Sessions(store, keyRing, { touchInterval: '60s', localCacheTtl: 0 });

    // 1,000 live sessions for 200 users, validated round-robin.
    const tokens: string[] = [];
    const users = Array.from({ length: 200 }, () => ({ userId: randomUUID(), organizationId: randomUUID() }));
    for (let i = 0; i < 1000; i++) {
      const user = users[i % users.length] ?? { userId: randomUUID(), organizationId: randomUUID() };
      const { token } = await sessions.create({
        ...user,
        roles: ['clinician'],
        ip: '203.0.113.10',
        userAgent: USER_AGENT,
      });
      tokens.push(token);
    }

    // Raw: the very same EVALSHA, keys and arguments, precomputed; binary replies as gatehouse reads them.
    const script = lua.validateSession;
    const rawBinary = raw.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });
    const rawCalls = tokens.map((token) => {
      const ref = refFromToken(token);
      if (!ref) throw new Error('bad token');
      const keys = sessionKeys(store.keys, ref);
      return {
        keys: [keys.session, keys.index, keys.deadlines, keys.ended],
        arguments: [ref.tokenHash, '60000', '1', String(43_200_000), String(43_200_000)],
      };
    });

    // connect-redis: 1,000 express-session sessions with the same data.
    const connectStore = new ConnectRedisStore({ client: connectClient, prefix: 'sess:' });
    const sids = tokens.map((_, i) => `sid-${String(i)}-${randomUUID()}`);
    for (const [i, sid] of sids.entries()) {
      const user = users[i % users.length];
      await connectStore.set(sid, {
        cookie: { originalMaxAge: 43_200_000, httpOnly: true, secure: true, sameSite: 'lax', path: '/' },
        ...user,
        roles: ['clinician'],
        ip: '203.0.113.10',
        userAgent: USER_AGENT,
      } as never);
    }

    const at = <T>(list: readonly T[], index: number): T => list[index % list.length] as T;
    const throughput = await interleave(
      [
        { name: 'gatehouse sessions.validate', op: (i) => sessions.validate(at(tokens, i)) },
        { name: 'gatehouse sessions.validate, local cache off', op: (i) => uncached.validate(at(tokens, i)) },
        {
          name: 'raw node-redis EVALSHA (same script)',
          op: (i) => rawBinary.evalSha(script.sha1, at(rawCalls, i)),
        },
        { name: 'connect-redis get', op: (i) => connectStore.get(at(sids, i)) },
      ],
      options,
    );
    await sessions.close();
    await uncached.close();

    const memory = await measureMemory(server.port);
    return { throughput, memory };
  } finally {
    raw.destroy();
    connectClient.destroy();
    await store.close();
    await server.destroy();
  }
}

/** MEMORY USAGE of 10,000 sessions of 2,000 users: session keys plus the users' index keys. */
async function measureMemory(port: number): Promise<SessionBenchResult['memory']> {
  const admin = createClient({ socket: { host: '127.0.0.1', port } });
  await admin.connect();
  try {
    const prefix = 'ghmem';
    const memoryStore = new RedisStore({
      connection: { topology: 'standalone', host: '127.0.0.1', port },
      keyPrefix: prefix,
    });
    await memoryStore.waitUntilReady(5000);
    const sessions = new Sessions(memoryStore, KeyRing.random());
    const users = 2000;
    const perUser = 5;
    for (let u = 0; u < users; u++) {
      const user = { userId: randomUUID(), organizationId: randomUUID(), roles: ['clinician'] };
      await Promise.all(
        Array.from({ length: perUser }, (_, s) =>
          sessions.create({
            ...user,
            ip: `10.1.${String(u % 250)}.${String(s + 1)}`,
            userAgent: USER_AGENT.slice(0, 120),
          }),
        ),
      );
    }
    await sessions.close();
    await memoryStore.close();
    let sessionBytes = 0;
    let indexBytes = 0;
    let sessionCount = 0;
    for await (const keys of admin.scanIterator({ MATCH: `${prefix}:*`, COUNT: 1000 })) {
      for (const key of keys) {
        const bytes = (await admin.memoryUsage(key, { SAMPLES: 0 })) ?? 0;
        if (key.includes('}:s:')) {
          sessionBytes += bytes;
          sessionCount++;
        } else {
          indexBytes += bytes;
        }
      }
    }
    return {
      sessions: sessionCount,
      users,
      bytesPerSession: Math.round((sessionBytes + indexBytes) / sessionCount),
      sessionKeyBytes: Math.round(sessionBytes / sessionCount),
      indexBytesPerSession: Math.round(indexBytes / sessionCount),
    };
  } finally {
    admin.destroy();
  }
}
