/**
 * Route requirements checked when a route is defined, not when it is first requested: a policy
 * name that was never configured would otherwise answer 500 to every request, and a misspelt
 * requirement (`sesion: 'required'`) would leave the route unguarded without a word. Every
 * check here throws a RouteDefinitionError naming the route and what is wrong; the adapters call
 * them as routes are added (Fastify's onRoute hook, Express's `protect()`, `lock()`, `nonce()`).
 */
import { RouteDefinitionError } from '../errors.js';
import type { Csrf } from '../csrf/csrf.js';
import type { Locks } from '../locks/locks.js';
import type { Nonces } from '../nonces/nonces.js';
import type { RateLimits } from '../rate-limit/rate-limits.js';
import { toMs, type Duration } from '../util/duration.js';

/** What the guard was given, as far as definitions need it. */
export interface DefinitionContext {
  readonly csrf: Csrf | undefined;
  readonly rateLimits: RateLimits | undefined;
  readonly nonces: Nonces | undefined;
  readonly locks: Locks | undefined;
}

/** A lock requirement: the resource, and the durations of `HttpGuard.acquireLock`. */
export interface LockDefinition {
  readonly ttl?: Duration;
  readonly wait?: Duration;
  readonly maxHold?: Duration;
}

const UNSAFE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * Checks `definition` (a route's requirements, possibly with adapter keys such as Fastify's
 * `authenticate`, `nonce` and `lock`). `where` names the route in the error; `methods` are its
 * HTTP methods when the framework knows them at definition time.
 */
export function checkRouteDefinition(
  definition: unknown,
  where: string,
  context: DefinitionContext,
  options: { readonly extraKeys?: readonly string[]; readonly methods?: readonly string[] } = {},
): void {
  function fail(problem: string): never {
    throw new RouteDefinitionError(where, problem);
  }
  // No requirements still means the defaults: a CSRF check on unsafe methods.
  const route: unknown = definition ?? {};
  if (!isRecord(route)) fail('the requirements must be an object');
  const known = ['session', 'roles', 'csrf', 'rateLimit', ...(options.extraKeys ?? [])];
  for (const key of Object.keys(route)) {
    if (!known.includes(key)) fail(`unknown requirement "${key}" (known: ${known.join(', ')})`);
  }
  const { session, roles, csrf, rateLimit } = route;
  if (session !== undefined && session !== 'required' && session !== 'optional') {
    fail(`session must be 'required' or 'optional', not ${JSON.stringify(session)}`);
  }
  if (roles !== undefined) {
    if (!Array.isArray(roles) || roles.length === 0) {
      fail('roles must list at least one role (leave it out to require only a session)');
    }
    for (const role of roles as unknown[]) {
      if (typeof role !== 'string' || role === '') fail('roles must be non-empty strings');
    }
  }
  if (csrf !== undefined && typeof csrf !== 'boolean') fail('csrf must be true or false');
  if (rateLimit !== undefined) checkRateLimit(rateLimit, context.rateLimits, fail);
  const checksCsrf = csrf !== false && options.methods?.some((method) => UNSAFE_METHODS.has(method));
  if (checksCsrf === true && !context.csrf) {
    fail(
      'the route checks CSRF but the guard has no Csrf (pass csrf, or set csrf: false on bearer-only routes)',
    );
  }
  if ('authenticate' in route && route.authenticate !== undefined) {
    if (route.authenticate !== false) fail('authenticate may only be false');
    if (session === 'required' || roles !== undefined) {
      fail('a route with authenticate: false cannot require a session or roles');
    }
  }
  if ('nonce' in route && route.nonce !== undefined) {
    const nonce = route.nonce;
    if (!isRecord(nonce) || typeof nonce.purpose !== 'function')
      fail('nonce needs purpose: (request) => string');
    checkNonce(nonce.purpose, nonce.from, where, context);
  }
  if ('lock' in route && route.lock !== undefined) {
    const lock = route.lock;
    if (!isRecord(lock)) fail('lock needs resource: (request) => string');
    checkLock(lock.resource, lock, where, context);
  }
}

/** A nonce requirement: a purpose function, where the nonce is (a function, or the body's `nonce`), and Nonces to spend with. */
export function checkNonce(purpose: unknown, from: unknown, where: string, context: DefinitionContext): void {
  if (typeof purpose !== 'function')
    throw new RouteDefinitionError(where, 'the nonce purpose must be a function');
  if (from !== undefined && typeof from !== 'function') {
    throw new RouteDefinitionError(where, 'where the nonce is (from) must be a function');
  }
  if (!context.nonces)
    throw new RouteDefinitionError(where, 'nonces need a Nonces instance in the gatehouse options');
}

/** A lock requirement: a resource function, durations that parse, and a Locks instance. */
export function checkLock(
  resource: unknown,
  lock: LockDefinition,
  where: string,
  context: DefinitionContext,
): void {
  if (typeof resource !== 'function')
    throw new RouteDefinitionError(where, 'the lock resource must be a function');
  for (const name of ['ttl', 'wait', 'maxHold'] as const) {
    const value = lock[name];
    if (value === undefined) continue;
    let ms: number;
    try {
      ms = toMs(`lock ${name}`, value);
    } catch (error) {
      throw new RouteDefinitionError(where, (error as Error).message);
    }
    if (name === 'ttl' && ms === 0) throw new RouteDefinitionError(where, 'lock ttl must be longer than 0');
  }
  if (!context.locks)
    throw new RouteDefinitionError(where, 'locks need a Locks instance in the gatehouse options');
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkRateLimit(
  spec: unknown,
  rateLimits: RateLimits | undefined,
  fail: (problem: string) => never,
): void {
  let entries: [string, unknown][];
  if (typeof spec === 'string') entries = [[spec, 'user']];
  else if (Array.isArray(spec)) entries = spec.map((name: unknown) => [String(name), 'user']);
  else if (typeof spec === 'object' && spec !== null) entries = Object.entries(spec);
  else return fail('rateLimit must be a policy name, a list of names, or { name: "user" | "ip" }');
  if (entries.length === 0) fail('rateLimit names no policy (leave it out for none)');
  if (!rateLimits) fail('rate limits need a RateLimits instance in the gatehouse options');
  const configured = rateLimits.policyNames;
  for (const [name, by] of entries) {
    if (!configured.includes(name)) {
      fail(
        `rateLimit names the policy "${name}", which is not configured (configured: ${
          configured.length === 0 ? 'none' : configured.join(', ')
        }); add it to rateLimits in the gatehouse options`,
      );
    }
    if (by !== 'user' && by !== 'ip')
      fail(`rate limit ${name}: charge 'user' or 'ip', not ${JSON.stringify(by)}`);
  }
}
