/**
 * The data of the operations dashboard at /admin (docs/http-api.md, "Operations"), as
 * `/admin/api/overview` answers it: this instance's counters, Redis health, the degraded flag,
 * the live sessions, and a short history of samples for the charts. The page polls it every 2 s
 * (packages/server/src/service/admin-page/); its routes are
 * packages/server/src/service/routes/admin.ts.
 *
 * No PHI and no personal data on it: users appear under a pseudonymous label (the start of their
 * random id), sessions by their public handle; never an email, IP address or user agent.
 *
 * The store cannot list every user's sessions, so the sessions shown are those of the users who
 * signed in recently (the newest audit events) or joined recently (the newest accounts), see
 * {@link candidateUsers}; the page says so.
 */
import type { Session, StoreHealth } from 'gatehouse';

import type { ServiceContext } from './context.js';
import { redisReport } from './redis-report.js';
import { within } from './within.js';

/** How many users each source of {@link candidateUsers} contributes at most. */
export const CANDIDATES_PER_SOURCE = 200;
/** How many of the newest audit events are searched for sign-ins. */
export const RECENT_AUDIT_EVENTS = 20_000;
/** Users whose sessions are listed in detail (the most recently active first); counts cover all. */
export const MAX_USERS_SHOWN = 50;
/** Samples kept for the charts (per service instance). */
export const HISTORY_SAMPLES = 180;
/** Overviews asked for within this of the last one share it (several open pages, one computation). */
const OVERVIEW_REUSE_MS = 1000;
/** Concurrent `sessions.list` calls while counting. */
const LIST_CONCURRENCY = 8;
/** Redis health answers within this, or counts as down. */
const HEALTH_BUDGET_MS = 2000;

/** One point of the charts' history. */
export interface OverviewSample {
  readonly t: number;
  readonly activeSessions: number | null;
  readonly signinFailures: number;
  readonly rateLimitRefusals: number;
  readonly lockConflicts: number;
  readonly redisLatencyMs: number | null;
  readonly redisMemoryBytes: number | null;
  readonly redisClients: number | null;
  readonly degraded: boolean;
}

interface ShownSession {
  readonly handle: string;
  readonly createdAt: string;
  readonly lastSeenAt: string;
  readonly idleExpiresAt: string;
  readonly requestCount: number;
}

interface ShownUser {
  readonly userId: string;
  readonly label: string;
  readonly sessionCount: number;
  readonly lastSeenAtMs: number;
  readonly sessions: readonly ShownSession[];
}

interface RedisFacts {
  readonly status: 'up' | 'degraded' | 'down' | 'disabled';
  readonly mode: string;
  readonly latencyMs: number | null;
  readonly nodes: number;
  readonly memory: { usedBytes: number; maxBytes: number; policy: string | null } | null;
  readonly clients: number | null;
  /** True when the ACL user may not run INFO: memory and clients are unknown by design. */
  readonly infoNotPermitted: boolean;
}

/** What every caller of one computation shares (the per-caller parts are added afterwards). */
interface Snapshot {
  readonly atMs: number;
  readonly redis: RedisFacts;
  readonly database: 'up' | 'down';
  readonly degraded: boolean;
  readonly counters: {
    readonly signinFailures: number;
    readonly lockConflicts: number;
    readonly rateLimitRefusals: number;
    readonly rateLimits: readonly { policy: string; refused: number; allowed: number }[];
  };
  readonly sessions:
    | { readonly available: true; readonly active: number; readonly userCount: number; users: ShownUser[] }
    | { readonly available: false };
}

interface AdminState {
  readonly history: OverviewSample[];
  current: { atMs: number; promise: Promise<Snapshot> } | undefined;
}

/** Per service instance (several run in one process in the tests). */
const states = new WeakMap<ServiceContext, AdminState>();

function stateOf(context: ServiceContext): AdminState {
  let state = states.get(context);
  if (!state) {
    state = { history: [], current: undefined };
    states.set(context, state);
  }
  return state;
}

/** Runs `fn` over `items`, at most `limit` at a time, keeping the order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

function redisFacts(context: ServiceContext, health: StoreHealth | null): RedisFacts {
  if (context.config.store.kind === 'memory') {
    return {
      status: 'disabled',
      mode: 'memory',
      latencyMs: null,
      nodes: 0,
      memory: null,
      clients: null,
      infoNotPermitted: false,
    };
  }
  if (!health) {
    return {
      status: 'down',
      mode: context.config.store.connection.topology,
      latencyMs: null,
      nodes: 0,
      memory: null,
      clients: null,
      infoNotPermitted: false,
    };
  }
  const report = redisReport(health);
  return {
    status: report.status,
    mode: report.mode,
    latencyMs: report.latencyMs,
    nodes: report.nodes,
    memory: report.memory,
    clients: report.clients,
    infoNotPermitted: report.infoNotPermitted,
  };
}

async function counters(context: ServiceContext): Promise<Snapshot['counters']> {
  const { metrics } = context;
  const [signins, locks, decisions] = await Promise.all([
    metrics.signinFailures.get(),
    metrics.lockConflicts.get(),
    metrics.rateLimitDecisions.get(),
  ]);
  const sum = (values: readonly { value: number }[]) =>
    values.reduce((total, value) => total + value.value, 0);
  const byPolicy = new Map<string, { policy: string; refused: number; allowed: number }>();
  for (const policy of Object.keys(context.config.rateLimits)) {
    byPolicy.set(policy, { policy, refused: 0, allowed: 0 });
  }
  for (const value of decisions.values) {
    const policy = String(value.labels.policy ?? 'unknown');
    const entry = byPolicy.get(policy) ?? { policy, refused: 0, allowed: 0 };
    if (value.labels.decision === 'refused') entry.refused += value.value;
    else entry.allowed += value.value;
    byPolicy.set(policy, entry);
  }
  const rateLimits = [...byPolicy.values()];
  return {
    signinFailures: sum(signins.values),
    lockConflicts: sum(locks.values),
    rateLimitRefusals: rateLimits.reduce((total, entry) => total + entry.refused, 0),
    rateLimits,
  };
}

/**
 * The users whose sessions the dashboard counts: those who signed in among the newest
 * {@link RECENT_AUDIT_EVENTS} audit events (a bounded index range, whatever the log's size), the
 * {@link CANDIDATES_PER_SOURCE} newest accounts, and the caller. A user who signed in long ago
 * and made no account recently can be missing: the store keeps no list of every user's sessions.
 */
async function candidateUsers(context: ServiceContext, callerId: string): Promise<string[]> {
  const [signedIn, newest] = await Promise.all([
    context.db.query(
      `SELECT user_id FROM audit_log
        WHERE id > (SELECT coalesce(max(id), 0) - $1 FROM audit_log)
          AND type = 'signin' AND outcome = 'success' AND user_id IS NOT NULL
        GROUP BY user_id ORDER BY max(id) DESC LIMIT $2`,
      [RECENT_AUDIT_EVENTS, CANDIDATES_PER_SOURCE],
    ),
    context.db.query('SELECT id FROM users ORDER BY created_at DESC LIMIT $1', [CANDIDATES_PER_SOURCE]),
  ]);
  const ids = new Set<string>([callerId]);
  for (const row of signedIn.rows as { user_id?: unknown }[]) {
    if (typeof row.user_id === 'string') ids.add(row.user_id);
  }
  for (const row of newest.rows as { id?: unknown }[]) {
    if (typeof row.id === 'string') ids.add(row.id);
  }
  return [...ids];
}

function showSession(session: Session): ShownSession {
  return {
    handle: session.handle,
    createdAt: new Date(session.createdAtMs).toISOString(),
    lastSeenAt: new Date(session.lastSeenAtMs).toISOString(),
    idleExpiresAt: new Date(session.idleExpiresAtMs).toISOString(),
    requestCount: session.requestCount,
  };
}

async function liveSessions(
  context: ServiceContext,
  candidates: readonly string[],
): Promise<Snapshot['sessions']> {
  const listed = await mapLimit(candidates, LIST_CONCURRENCY, async (userId) => ({
    userId,
    sessions: await context.gh.sessions.list(userId),
  }));
  const users: ShownUser[] = listed
    .filter((entry) => entry.sessions.length > 0)
    .map(({ userId, sessions }) => ({
      userId,
      label: userId.slice(0, 8),
      sessionCount: sessions.length,
      lastSeenAtMs: Math.max(...sessions.map((session) => session.lastSeenAtMs)),
      sessions: sessions.map(showSession),
    }))
    .sort((a, b) => b.lastSeenAtMs - a.lastSeenAtMs);
  return {
    available: true,
    active: users.reduce((total, user) => total + user.sessionCount, 0),
    userCount: users.length,
    users,
  };
}

/** Where the dashboard reports what it could not do (a Fastify/pino logger). */
interface WarnLogger {
  warn(obj: object, msg: string): void;
}

async function computeSnapshot(
  context: ServiceContext,
  callerId: string,
  log: WarnLogger,
): Promise<Snapshot> {
  const atMs = Date.now();
  const [health, counted, candidates] = await Promise.all([
    context.config.store.kind === 'memory'
      ? Promise.resolve(null)
      : within(context.gh.health(), HEALTH_BUDGET_MS, null),
    counters(context),
    candidateUsers(context, callerId).catch(() => null),
  ]);
  const redis = redisFacts(context, health);
  const database = candidates ? 'up' : 'down';
  let sessions: Snapshot['sessions'] = { available: false };
  if (candidates) {
    try {
      sessions = await liveSessions(context, candidates);
    } catch (error) {
      log.warn({ err: error }, 'the dashboard could not list sessions');
    }
  }
  const degraded =
    context.metrics.isDegraded() ||
    database === 'down' ||
    (redis.status !== 'up' && redis.status !== 'disabled');
  return { atMs, redis, database, degraded, counters: counted, sessions };
}

function sampleOf(snapshot: Snapshot): OverviewSample {
  return {
    t: snapshot.atMs,
    activeSessions: snapshot.sessions.available ? snapshot.sessions.active : null,
    signinFailures: snapshot.counters.signinFailures,
    rateLimitRefusals: snapshot.counters.rateLimitRefusals,
    lockConflicts: snapshot.counters.lockConflicts,
    redisLatencyMs: snapshot.redis.latencyMs,
    redisMemoryBytes: snapshot.redis.memory?.usedBytes ?? null,
    redisClients: snapshot.redis.clients,
    degraded: snapshot.degraded,
  };
}

/** The newest snapshot, computed at most once per {@link OVERVIEW_REUSE_MS}; each adds a sample. */
function snapshot(context: ServiceContext, callerId: string, log: WarnLogger): Promise<Snapshot> {
  const state = stateOf(context);
  const now = Date.now();
  if (state.current && now - state.current.atMs < OVERVIEW_REUSE_MS) return state.current.promise;
  const promise = computeSnapshot(context, callerId, log).then((taken) => {
    state.history.push(sampleOf(taken));
    if (state.history.length > HISTORY_SAMPLES)
      state.history.splice(0, state.history.length - HISTORY_SAMPLES);
    return taken;
  });
  const current = { atMs: now, promise };
  state.current = current;
  // A failed computation is not reused.
  promise.catch(() => {
    if (state.current === current) state.current = undefined;
  });
  return promise;
}

/** The overview as `/admin/api/overview` answers it, for the session `current`. */
export async function adminOverview(
  context: ServiceContext,
  current: { readonly userId: string; readonly handle: string },
  log: WarnLogger,
): Promise<Record<string, unknown>> {
  const taken = await snapshot(context, current.userId, log);
  const sessions = taken.sessions.available
    ? {
        available: true,
        active: taken.sessions.active,
        userCount: taken.sessions.userCount,
        hiddenUsers: Math.max(0, taken.sessions.users.length - MAX_USERS_SHOWN),
        users: taken.sessions.users.slice(0, MAX_USERS_SHOWN).map((user) => ({
          label: user.label,
          you: user.userId === current.userId,
          sessionCount: user.sessionCount,
          sessions: user.sessions.map((session) => ({
            ...session,
            current: session.handle === current.handle,
          })),
        })),
      }
    : { available: false, active: null, userCount: null, hiddenUsers: 0, users: [] };
  return {
    generatedAt: new Date(taken.atMs).toISOString(),
    instance: {
      version: context.version,
      uptimeSeconds: Math.floor((taken.atMs - context.startedAtMs) / 1000),
      degraded: taken.degraded,
      rateLimitsDegraded: context.gh.rateLimits.degraded,
      database: taken.database,
      eventStreams: context.events.size,
    },
    redis: taken.redis,
    counters: taken.counters,
    sessions,
    history: stateOf(context).history,
  };
}

/** Forgets the newest overview, so the next one is computed afresh (after a session was ended). */
export function forgetOverview(context: ServiceContext): void {
  stateOf(context).current = undefined;
}
