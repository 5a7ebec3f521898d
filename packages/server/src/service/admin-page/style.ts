/**
 * The dashboard's style sheet, served as /admin/dashboard.css (a TypeScript constant so that the
 * build, which compiles src/ and copies only src/lua, carries it).
 */
export const DASHBOARD_CSS = `
:root {
  color-scheme: light;
  --ink: #1d2430;
  --muted: #5b6472;
  --line: #dfe3ea;
  --card: #ffffff;
  --page: #f4f6f9;
  --accent: #2563eb;
  --accent-soft: rgba(37, 99, 235, 0.12);
  --warn: #b45309;
  --bad: #b91c1c;
  --good: #15803d;
}
* { box-sizing: border-box; }
body {
  margin: 0;
  font: 15px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif;
  color: var(--ink);
  background: var(--page);
}
.top {
  display: flex;
  justify-content: space-between;
  align-items: center;
  gap: 1rem;
  padding: 1rem 1.5rem;
  background: var(--card);
  border-bottom: 1px solid var(--line);
}
h1 { font-size: 1.35rem; margin: 0; }
h2 { font-size: 0.95rem; margin: 0 0 0.25rem; color: var(--muted); font-weight: 600; }
.sub { margin: 0.2rem 0 0; color: var(--muted); font-size: 0.9rem; }
main { padding: 1rem 1.5rem 2rem; }
.badge {
  margin: 0;
  padding: 0.35rem 0.8rem;
  border-radius: 999px;
  font-weight: 700;
  font-size: 0.9rem;
  white-space: nowrap;
}
.badge-unknown { background: var(--line); color: var(--muted); }
.badge-healthy { background: #dcfce7; color: var(--good); }
.badge-degraded { background: #fee2e2; color: var(--bad); }
.badge-stale { background: #fef3c7; color: var(--warn); }
.banner {
  margin: 1rem 1.5rem 0;
  padding: 0.7rem 1rem;
  border-radius: 6px;
  background: #fef3c7;
  color: #78350f;
  border: 1px solid #fcd34d;
}
.banner.info { background: #e0f2fe; color: #075985; border-color: #7dd3fc; }
.grid {
  display: grid;
  grid-template-columns: repeat(auto-fill, minmax(270px, 1fr));
  gap: 1rem;
}
.card {
  background: var(--card);
  border: 1px solid var(--line);
  border-radius: 8px;
  padding: 0.9rem 1rem 0.6rem;
  min-width: 0;
}
.big { font-size: 2rem; font-weight: 700; margin: 0; font-variant-numeric: tabular-nums; }
.big.bad { color: var(--bad); }
.big.good { color: var(--good); }
.note { margin: 0.1rem 0 0.4rem; color: var(--muted); font-size: 0.85rem; }
.chart { display: block; width: 100%; height: auto; margin-top: 0.3rem; }
.chart .axis { stroke: var(--line); stroke-width: 1; }
.chart .line { fill: none; stroke: var(--accent); stroke-width: 2; stroke-linejoin: round; stroke-linecap: round; }
.chart .area { fill: var(--accent-soft); stroke: none; }
.chart .dot { fill: var(--accent); }
.chart .line.bad { stroke: var(--bad); }
.chart .area.bad { fill: rgba(185, 28, 28, 0.12); }
.chart .dot.bad { fill: var(--bad); }
.chart text { font-size: 10px; fill: var(--muted); }
.chart .bar { fill: var(--accent); }
.chart .bar.refused { fill: var(--bad); }
.chart .track { fill: var(--page); }
.chart .label { font-size: 11px; fill: var(--ink); }
.sessions { margin-top: 1.5rem; }
.sessions h2 { font-size: 1.05rem; color: var(--ink); }
table {
  width: 100%;
  border-collapse: collapse;
  background: var(--card);
  border: 1px solid var(--line);
  border-radius: 8px;
  font-variant-numeric: tabular-nums;
}
th, td { padding: 0.4rem 0.7rem; text-align: left; border-bottom: 1px solid var(--line); }
thead th { font-size: 0.8rem; color: var(--muted); text-transform: uppercase; letter-spacing: 0.03em; }
tr.user th { background: var(--page); font-weight: 600; }
tr.user .count { color: var(--muted); font-weight: 400; margin-left: 0.5rem; }
td.handle { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 0.85rem; }
tr.ended td { color: var(--muted); text-decoration: line-through; }
button {
  font: inherit;
  font-size: 0.85rem;
  padding: 0.25rem 0.7rem;
  border-radius: 5px;
  border: 1px solid var(--bad);
  color: var(--bad);
  background: var(--card);
  cursor: pointer;
}
button:hover:not(:disabled) { background: #fee2e2; }
button:focus-visible { outline: 2px solid var(--accent); outline-offset: 2px; }
button:disabled { border-color: var(--line); color: var(--muted); cursor: default; }
.you { color: var(--accent); font-weight: 600; }
.sr {
  position: absolute;
  width: 1px;
  height: 1px;
  overflow: hidden;
  clip: rect(0 0 0 0);
  white-space: nowrap;
}
footer { padding: 0 1.5rem 1.5rem; color: var(--muted); font-size: 0.85rem; }
a { color: var(--accent); }
`;
