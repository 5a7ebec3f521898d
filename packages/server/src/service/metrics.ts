/**
 * Prometheus metrics (`prom-client`, one registry per service so tests can run several):
 * requests by route and status with latency, session validations by outcome, rate-limit
 * decisions by policy, lock conflicts, sign-in failures, Redis latency and errors, the
 * degraded flag; and the process's own (prom-client's defaults: heap, resident memory, event-loop
 * delay, GC, open handles). Labels are route patterns and policy names: never an id, IP or email.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

import type { Gatehouse } from 'gatehouse';

import type { Config } from '../config.js';

/**
 * What the gauges and the degraded flag read, given once the service is built (its
 * `ServiceContext`, packages/server/src/service/context.ts, has all of it).
 */
export interface MetricsSources {
  readonly config: Pick<Config, 'store'>;
  readonly gh: Pick<Gatehouse, 'health' | 'rateLimits' | 'store'>;
  readonly events: { readonly size: number };
}

export class ServiceMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'gatehouse_http_requests_total',
    help: 'HTTP requests by route pattern, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: 'gatehouse_http_request_duration_seconds',
    help: 'HTTP request latency by route pattern and method',
    labelNames: ['route', 'method'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly sessionValidations = new Counter({
    name: 'gatehouse_session_validations_total',
    help: 'Requests by how their session validated: valid, invalid (presented but refused) or none',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly rateLimitDecisions = new Counter({
    name: 'gatehouse_rate_limit_decisions_total',
    help: 'Rate-limited requests by route policy and decision',
    labelNames: ['policy', 'decision'] as const,
    registers: [this.registry],
  });
  readonly lockConflicts = new Counter({
    name: 'gatehouse_lock_conflicts_total',
    help: 'Lock acquisitions refused because another holder had the lock',
    registers: [this.registry],
  });
  readonly signinFailures = new Counter({
    name: 'gatehouse_signin_failures_total',
    help: 'Refused sign-ins',
    registers: [this.registry],
  });
  readonly storeUnavailable = new Counter({
    name: 'gatehouse_redis_errors_total',
    help: 'Requests answered 503 because Redis (or another dependency) did not answer',
    registers: [this.registry],
  });
  private sources: MetricsSources | undefined;

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  /** Gauges read at scrape time: Redis latency, degraded flag, live event streams. */
  watch(sources: MetricsSources): void {
    this.sources = sources;
    const isDegraded = () => this.isDegraded();
    new Gauge({
      name: 'gatehouse_redis_latency_seconds',
      help: 'Round trip of a Redis PING at scrape time (-1 when Redis did not answer)',
      registers: [this.registry],
      async collect() {
        const health = await sources.gh.health();
        this.set(health.latencyMs === null ? -1 : health.latencyMs / 1000);
      },
    });
    new Gauge({
      name: 'gatehouse_degraded',
      help: '1 while the service runs degraded (Redis down, rate limits on the local fallback)',
      registers: [this.registry],
      collect() {
        this.set(isDegraded() ? 1 : 0);
      },
    });
    new Gauge({
      name: 'gatehouse_event_streams',
      help: 'Open server-sent event streams on this instance',
      registers: [this.registry],
      collect() {
        this.set(sources.events.size);
      },
    });
  }

  isDegraded(): boolean {
    const sources = this.sources;
    if (!sources) return false;
    if (sources.gh.rateLimits.degraded) return true;
    if (sources.config.store.kind === 'memory') return false;
    return !sources.gh.store.isReady();
  }

  observeRequest(request: FastifyRequest, reply: FastifyReply): void {
    const route = request.routeOptions.url ?? 'unmatched';
    const status = reply.statusCode;
    this.requests.inc({ route, method: request.method, status: String(status) });
    this.latency.observe({ route, method: request.method }, reply.elapsedTime / 1000);
    if (status === 503) this.storeUnavailable.inc();
    const policies = request.routeOptions.config.gatehouse?.rateLimit;
    if (policies !== undefined && request.gatehouseAuth) {
      const names =
        typeof policies === 'string'
          ? [policies]
          : Array.isArray(policies)
            ? policies
            : Object.keys(policies);
      const decision = status === 429 ? 'refused' : 'allowed';
      for (const policy of names as string[]) this.rateLimitDecisions.inc({ policy, decision });
    }
  }

  stop(): void {
    this.registry.clear();
  }
}
