/**
 * The operations dashboard's page: markup only, under a strict CSP (no inline script or style).
 * Its script (packages/server/src/service/admin-page/script.ts, served as /admin/dashboard.js)
 * fills it in; its style sheet is packages/server/src/service/admin-page/style.ts.
 */

/** The page's CSP: scripts, styles and fetches from the service only; nothing inline. */
export const ADMIN_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/** The page: markup only; the script at /admin/dashboard.js fills it in. */
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
