/**
 * The operations page at /admin (role `admin`): this instance's counters and Redis health, as
 * static HTML under a strict CSP. No PHI: counts, states and latencies only. (The live dashboard
 * with charts and session controls is issue #9.)
 */
import type { ServiceContext } from './app.js';
import { escapeHtml } from './openapi.js';

async function counterTotal(context: ServiceContext, name: string): Promise<number> {
  const metric = context.metrics.registry.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  return values.reduce((sum, value) => sum + value.value, 0);
}

export async function renderAdminPage(context: ServiceContext): Promise<string> {
  const [health, degraded, signinFailures, lockConflicts, rateLimited] = await Promise.all([
    context.config.store.kind === 'memory' ? null : context.gh.health(),
    Promise.resolve(context.metrics.isDegraded()),
    counterTotal(context, 'gatehouse_signin_failures_total'),
    counterTotal(context, 'gatehouse_lock_conflicts_total'),
    (async () => {
      const metric = context.metrics.registry.getSingleMetric('gatehouse_rate_limit_decisions_total');
      if (!metric) return 0;
      const { values } = await metric.get();
      return values
        .filter((value) => value.labels.decision === 'refused')
        .reduce((sum, value) => sum + value.value, 0);
    })(),
  ]);
  const rows: [string, string][] = [
    ['status', degraded ? 'degraded' : 'healthy'],
    [
      'Redis',
      health
        ? `${health.mode}, ${health.status}, ${health.latencyMs === null ? '-' : `${health.latencyMs.toFixed(1)} ms`}`
        : 'memory store (one instance)',
    ],
    ['live event streams on this instance', String(context.events.size)],
    ['sign-in failures (this instance)', String(signinFailures)],
    ['rate-limit refusals (this instance)', String(rateLimited)],
    ['lock conflicts (this instance)', String(lockConflicts)],
    ['uptime', `${String(Math.floor((Date.now() - context.startedAtMs) / 1000))} s`],
  ];
  const body = rows
    .map(([name, value]) => `<tr><th>${escapeHtml(name)}</th><td>${escapeHtml(value)}</td></tr>`)
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gatehouse operations</title>
<style>body{font:15px/1.5 system-ui,sans-serif;margin:2rem;color:#222}th,td{padding:.3rem .8rem;text-align:left;border-bottom:1px solid #ddd}</style>
</head><body><h1>gatehouse operations</h1><table>
${body}
</table><p>Metrics for scraping: <a href="/metrics">/metrics</a>. API: <a href="/docs">/docs</a>.</p></body></html>`;
}
