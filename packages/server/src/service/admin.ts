/**
 * The operations dashboard at /admin (role `admin`, API.md "Operations"): a page under a strict
 * CSP (no inline script or style) whose script polls `/admin/api/overview` every 2 s and draws
 * this instance's counters, Redis health, the degraded flag and the live sessions, with small SVG
 * charts, and ends sessions through `/admin/api/sessions/:handle/terminate`.
 *
 * No PHI and no personal data on it: users appear under a pseudonymous label (the start of their
 * random id), sessions by their public handle; never an email, IP address or user agent.
 *
 * The store cannot list every user's sessions, so the sessions shown are those of the users who
 * signed in recently (the newest audit events) or joined recently (the newest accounts), see
 * {@link candidateUsers}; the page says so.
 */
import type { FastifyInstance } from 'fastify';

import type { Session, StoreHealth } from 'gatehouse';
import { DASHBOARD_CSS } from './admin-page/style.js';
import { DASHBOARD_JS } from './admin-page/script.js';
import type { ServiceContext } from './app.js';
import { redisReport } from './redis-report.js';
import { revokeAccessTokens, requireSession } from './routes/auth.js';
import { envelope, errorResponse, noContent, ok, sendError } from './schemas.js';
import { within } from './within.js';

/** The page's CSP: scripts, styles and fetches from the service only; nothing inline. */
export const ADMIN_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

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

const SESSION_CAUSE = 'terminated';

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

/** The page: markup only; dashboard.js fills it in. */
export function renderAdminPage(): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>gatehouse operations</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/admin/dashboard.css">
<script src="/admin/dashboard.js" defer></script>
</head>
<body>
<header class="top">
  <div>
    <h1>gatehouse operations</h1>
    <p class="sub">This instance: version <span id="version">–</span>, up <span id="uptime">–</span>.
      Updated <span id="updated" data-testid="updated">never</span>.</p>
  </div>
  <p id="state" class="badge badge-unknown" data-testid="degraded" role="status">loading…</p>
</header>
<noscript><p class="banner">The dashboard needs JavaScript. The raw numbers are at <a href="/metrics">/metrics</a>.</p></noscript>
<p id="banner" class="banner" role="alert" hidden></p>
<p id="notice" class="banner info" role="status" data-testid="notice" hidden></p>
<main>
<section class="grid" aria-label="Counters">
  <article class="card" aria-labelledby="h-sessions">
    <h2 id="h-sessions">Active sessions</h2>
    <p class="big" id="active-sessions" data-testid="active-sessions">–</p>
    <p class="note" id="active-users" data-testid="active-users">–</p>
    <svg id="chart-sessions" class="chart" viewBox="0 0 320 90" role="img" aria-label="Active sessions over time"></svg>
  </article>
  <article class="card" aria-labelledby="h-signin">
    <h2 id="h-signin">Sign-in failures</h2>
    <p class="big" id="signin-failures" data-testid="signin-failures">–</p>
    <p class="note">Since this instance started.</p>
    <svg id="chart-signin" class="chart" viewBox="0 0 320 90" role="img" aria-label="Sign-in failures over time"></svg>
  </article>
  <article class="card" aria-labelledby="h-ratelimit">
    <h2 id="h-ratelimit">Rate-limit refusals</h2>
    <p class="big" id="rate-limit-refusals" data-testid="rate-limit-refusals">–</p>
    <p class="note">By policy, since this instance started.</p>
    <svg id="chart-ratelimit" class="chart" viewBox="0 0 320 80" role="img" aria-label="Rate-limit refusals by policy"></svg>
  </article>
  <article class="card" aria-labelledby="h-locks">
    <h2 id="h-locks">Lock conflicts</h2>
    <p class="big" id="lock-conflicts" data-testid="lock-conflicts">–</p>
    <p class="note">Since this instance started.</p>
    <svg id="chart-locks" class="chart" viewBox="0 0 320 90" role="img" aria-label="Lock conflicts over time"></svg>
  </article>
  <article class="card" aria-labelledby="h-latency">
    <h2 id="h-latency">Redis latency</h2>
    <p class="big" id="redis-latency" data-testid="redis-latency">–</p>
    <p class="note" id="redis-mode" data-testid="redis-mode">–</p>
    <svg id="chart-latency" class="chart" viewBox="0 0 320 90" role="img" aria-label="Redis latency over time"></svg>
  </article>
  <article class="card" aria-labelledby="h-memory">
    <h2 id="h-memory">Redis memory and clients</h2>
    <p class="big" id="redis-memory" data-testid="redis-memory">–</p>
    <p class="note"><span id="redis-clients" data-testid="redis-clients">–</span></p>
    <svg id="chart-memory" class="chart" viewBox="0 0 320 90" role="img" aria-label="Redis memory over time"></svg>
  </article>
  <article class="card" aria-labelledby="h-degraded">
    <h2 id="h-degraded">Degraded</h2>
    <p class="big" id="degraded-flag" data-testid="degraded-flag">–</p>
    <p class="note" id="degraded-detail">–</p>
    <svg id="chart-degraded" class="chart" viewBox="0 0 320 90" role="img" aria-label="Degraded flag over time"></svg>
  </article>
</section>
<section class="sessions" aria-labelledby="h-table">
  <h2 id="h-table">Live sessions</h2>
  <p class="note">Users appear under a pseudonymous label (the start of their user id), sessions by
    their public handle: no emails, addresses or other personal data. Counted: users who signed in
    recently or joined recently; the store keeps no list of every user.</p>
  <table data-testid="sessions-table">
    <thead><tr><th scope="col">User</th><th scope="col">Session</th><th scope="col">Created</th>
      <th scope="col">Last seen</th><th scope="col">Requests</th><th scope="col"><span class="sr">Action</span></th></tr></thead>
    <tbody id="sessions-body"></tbody>
  </table>
  <p class="note" id="sessions-more" hidden></p>
</section>
</main>
<footer><p>Metrics for scraping: <a href="/metrics">/metrics</a>. Health: <a href="/health">/health</a>.
  API: <a href="/docs">/docs</a>. Counters are this instance's; every instance has its own dashboard.</p></footer>
</body>
</html>
`;
}

const handleParams = {
  type: 'object',
  required: ['handle'],
  properties: { handle: { type: 'string', minLength: 1, maxLength: 256 } },
} as const;

const looseObject = { type: 'object', additionalProperties: true } as const;

const overviewSchema = envelope({
  type: 'object',
  properties: {
    generatedAt: { type: 'string', format: 'date-time' },
    instance: looseObject,
    redis: looseObject,
    counters: looseObject,
    sessions: looseObject,
    history: { type: 'array', items: looseObject },
  },
});

/** GET /admin, its script and style, the overview and session termination. */
export function registerAdminRoutes(app: FastifyInstance, context: ServiceContext): void {
  const guard = { gatehouse: { roles: ['admin'], rateLimit: 'api' } };
  const forbidden = { 401: errorResponse, 403: errorResponse, 429: errorResponse };

  app.get(
    '/admin',
    {
      schema: { summary: 'The operations dashboard (role admin)', tags: ['operations'] },
      config: guard,
    },
    (_request, reply) =>
      reply
        .header('Content-Type', 'text/html; charset=utf-8')
        .header('Cache-Control', 'no-store')
        .header('Content-Security-Policy', ADMIN_CSP)
        .send(renderAdminPage()),
  );

  app.get(
    '/admin/dashboard.js',
    {
      schema: { summary: "The dashboard's script (role admin)", tags: ['operations'] },
      config: guard,
    },
    (_request, reply) =>
      reply
        .header('Content-Type', 'text/javascript; charset=utf-8')
        .header('Cache-Control', 'no-store')
        .send(DASHBOARD_JS),
  );

  app.get(
    '/admin/dashboard.css',
    {
      schema: { summary: "The dashboard's style sheet (role admin)", tags: ['operations'] },
      config: guard,
    },
    (_request, reply) =>
      reply
        .header('Content-Type', 'text/css; charset=utf-8')
        .header('Cache-Control', 'no-store')
        .send(DASHBOARD_CSS),
  );

  app.get(
    '/admin/api/overview',
    {
      schema: {
        summary:
          "The dashboard's data: this instance's counters, Redis health, the degraded flag, live sessions (role admin)",
        tags: ['operations'],
        response: { 200: overviewSchema, ...forbidden },
      },
      config: guard,
    },
    async (request, reply) => {
      const current = requireSession(request);
      void reply.header('Cache-Control', 'no-store');
      return ok(await adminOverview(context, current, request.log));
    },
  );

  app.post(
    '/admin/api/sessions/:handle/terminate',
    {
      schema: {
        summary: "End any user's session by its handle (role admin)",
        tags: ['operations'],
        params: handleParams,
        response: { 204: noContent, 404: errorResponse, ...forbidden },
      },
      config: guard,
    },
    async (request, reply) => {
      const admin = requireSession(request);
      const { handle } = request.params as { handle: string };
      if (!(await context.gh.sessions.revoke(handle, { cause: SESSION_CAUSE }))) {
        return sendError(reply, 404, 'NOT_FOUND', 'No such live session.');
      }
      await revokeAccessTokens(context, { handle });
      context.audit.record({
        type: 'admin.session-terminated',
        outcome: 'success',
        userId: admin.userId,
        sessionHash: context.gh.keyRing.auditHash(handle),
        requestId: request.id,
      });
      // The next overview shows the session gone.
      stateOf(context).current = undefined;
      return reply.code(204).send();
    },
  );
}
