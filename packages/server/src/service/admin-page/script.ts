/**
 * The dashboard's browser script, served as /admin/dashboard.js (a TypeScript constant so that the
 * build, which compiles src/ and copies only src/lua, carries it). Plain ES2020 for the browser,
 * no libraries. It builds every node with DOM APIs (textContent, never innerHTML), so nothing the
 * overview says can become markup, and it needs no inline script or style: the page's CSP allows
 * scripts, styles and fetches from the service only.
 *
 * It polls /admin/api/overview every 2 s (one request at a time, paused while the tab is hidden),
 * and ends sessions with POST /admin/api/sessions/:handle/terminate, with a fresh CSRF token from
 * /api/v1/auth/csrf each time.
 *
 * Kept free of backticks and dollar-brace sequences: it lives in a template literal.
 */
export const DASHBOARD_JS = String.raw`'use strict';
(function () {
  var POLL_MS = 2000;
  var SVG_NS = 'http://www.w3.org/2000/svg';
  /** Table rows by key, kept between polls so buttons and focus survive a refresh. */
  var rows = new Map();
  var timer = null;
  var inFlight = false;
  var again = false;
  var stopped = false;

  function byId(id) {
    return document.getElementById(id);
  }

  function setText(id, text) {
    var node = byId(id);
    if (node && node.textContent !== text) node.textContent = text;
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    setAttrs(node, attrs);
    (children || []).forEach(function (child) {
      node.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
    });
    return node;
  }

  function svgEl(tag, attrs, text) {
    var node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function setAttrs(node, attrs) {
    Object.keys(attrs || {}).forEach(function (name) {
      node.setAttribute(name, String(attrs[name]));
    });
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function plural(n, one, many) {
    return fmtInt(n) + ' ' + (n === 1 ? one : many);
  }

  function fmtInt(n) {
    return typeof n === 'number' ? Math.round(n).toLocaleString('en') : '–';
  }

  function fmtMs(ms) {
    if (typeof ms !== 'number') return '–';
    return (ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : String(Math.round(ms))) + ' ms';
  }

  function fmtBytes(bytes) {
    if (typeof bytes !== 'number') return '–';
    var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    var value = bytes;
    var unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return (unit === 0 ? String(value) : value.toFixed(value < 10 ? 2 : 1)) + ' ' + units[unit];
  }

  function fmtDuration(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
    if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
    return Math.floor(s / 86400) + ' d ' + Math.floor((s % 86400) / 3600) + ' h';
  }

  function fmtAgo(ms) {
    return ms < 1500 ? 'just now' : fmtDuration(ms / 1000) + ' ago';
  }

  function fmtTime(iso) {
    var date = new Date(iso);
    return date.toLocaleString('en-GB', { dateStyle: 'short', timeStyle: 'medium' });
  }

  function shortHandle(handle) {
    return '…' + handle.slice(-10);
  }

  /** 1, 2, 5 times a power of ten, at least max. */
  function niceMax(max) {
    if (!(max > 0)) return 1;
    var power = Math.pow(10, Math.floor(Math.log10(max)));
    var steps = [1, 2, 5, 10];
    for (var i = 0; i < steps.length; i += 1) {
      if (steps[i] * power >= max) return steps[i] * power;
    }
    return 10 * power;
  }

  /**
   * A line chart of history[*][key] into svg (viewBox 320x90): an area under the line, a dot
   * on the newest value, the scale's top and the time span as text.
   */
  function lineChart(svg, history, key, options) {
    var W = 320;
    var H = 90;
    var TOP = 14;
    var BOTTOM = 16;
    var LEFT = 2;
    var RIGHT = 6;
    var format = options.format || fmtInt;
    clear(svg);
    svg.appendChild(svgEl('line', { class: 'axis', x1: LEFT, x2: W - RIGHT, y1: H - BOTTOM, y2: H - BOTTOM }));
    var points = history.map(function (sample) {
      var value = sample[key];
      if (typeof value === 'boolean') value = value ? 1 : 0;
      return { t: sample.t, v: typeof value === 'number' ? value : null };
    });
    var values = points.filter(function (p) {
      return p.v !== null;
    });
    if (values.length === 0) {
      svg.appendChild(svgEl('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, options.empty || 'no data yet'));
      svg.setAttribute('aria-label', options.label + ': no data');
      return;
    }
    var t0 = points[0].t;
    var t1 = points[points.length - 1].t;
    var span = Math.max(1, t1 - t0);
    var highest = Math.max.apply(
      null,
      values.map(function (p) {
        return p.v;
      }),
    );
    var max = options.max !== undefined ? options.max : niceMax(highest);
    function x(t) {
      return points.length === 1 ? W - RIGHT : LEFT + ((t - t0) / span) * (W - LEFT - RIGHT);
    }
    function y(v) {
      return H - BOTTOM - (Math.min(v, max) / max) * (H - TOP - BOTTOM);
    }
    svg.appendChild(svgEl('line', { class: 'axis', x1: LEFT, x2: W - RIGHT, y1: y(max), y2: y(max) }));
    var segments = [];
    var current = null;
    points.forEach(function (p) {
      if (p.v === null) {
        current = null;
        return;
      }
      if (!current) {
        current = [];
        segments.push(current);
      } else if (options.step) {
        current.push([x(p.t), current[current.length - 1][1]]);
      }
      current.push([x(p.t), y(p.v)]);
    });
    var bad = options.bad ? ' bad' : '';
    segments.forEach(function (segment) {
      var line = segment
        .map(function (pt, i) {
          return (i === 0 ? 'M' : 'L') + pt[0].toFixed(1) + ' ' + pt[1].toFixed(1);
        })
        .join(' ');
      var first = segment[0];
      var last = segment[segment.length - 1];
      var base = (H - BOTTOM).toFixed(1);
      var area =
        line + ' L' + last[0].toFixed(1) + ' ' + base + ' L' + first[0].toFixed(1) + ' ' + base + ' Z';
      if (segment.length > 1) svg.appendChild(svgEl('path', { class: 'area' + bad, d: area }));
      svg.appendChild(svgEl('path', { class: 'line' + bad, d: line }));
    });
    var newest = values[values.length - 1];
    svg.appendChild(svgEl('circle', { class: 'dot' + bad, cx: x(newest.t), cy: y(newest.v), r: 3 }));
    svg.appendChild(svgEl('text', { x: LEFT + 2, y: TOP - 4 }, options.topLabel ? options.topLabel(max) : format(max)));
    svg.appendChild(svgEl('text', { x: LEFT + 2, y: H - 3 }, fmtDuration(span / 1000) + ' ago'));
    svg.appendChild(svgEl('text', { x: W - RIGHT, y: H - 3, 'text-anchor': 'end' }, 'now'));
    var summary = options.label + ': now ' + format(newest.v) + ', highest ' + format(highest);
    svg.appendChild(svgEl('title', {}, summary));
    svg.setAttribute('aria-label', summary);
  }

  /** Horizontal bars: refusals per rate-limit policy. */
  function barChart(svg, entries) {
    var W = 320;
    var ROW = 22;
    var LABEL = 70;
    var VALUE = 56;
    clear(svg);
    var height = Math.max(1, entries.length) * ROW + 4;
    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + height);
    var max = Math.max.apply(
      null,
      [1].concat(
        entries.map(function (e) {
          return e.refused;
        }),
      ),
    );
    var width = W - LABEL - VALUE;
    var parts = [];
    entries.forEach(function (entry, i) {
      var top = i * ROW + 2;
      var group = svgEl('g', {});
      group.appendChild(svgEl('text', { class: 'label', x: 0, y: top + 15 }, entry.policy));
      group.appendChild(svgEl('rect', { class: 'track', x: LABEL, y: top + 4, width: width, height: ROW - 8, rx: 3 }));
      var bar = (entry.refused / max) * width;
      if (bar > 0) {
        group.appendChild(
          svgEl('rect', { class: 'bar refused', x: LABEL, y: top + 4, width: Math.max(2, bar), height: ROW - 8, rx: 3 }),
        );
      }
      var total = entry.refused + entry.allowed;
      group.appendChild(svgEl('text', { class: 'label', x: W - VALUE + 8, y: top + 15 }, fmtInt(entry.refused)));
      var text =
        entry.policy + ': ' + fmtInt(entry.refused) + ' refused of ' + fmtInt(total) + ' checked';
      group.appendChild(svgEl('title', {}, text));
      parts.push(text);
      svg.appendChild(group);
    });
    svg.setAttribute('aria-label', 'Rate-limit refusals by policy: ' + (parts.join('; ') || 'none'));
  }

  function showBanner(id, text, kind) {
    var node = byId(id);
    if (!node) return;
    node.textContent = text;
    if (kind) node.className = 'banner ' + kind;
    node.hidden = text === '';
  }

  function setState(label, kind) {
    var node = byId('state');
    node.textContent = label;
    node.className = 'badge badge-' + kind;
  }

  function render(data) {
    var instance = data.instance;
    var counters = data.counters;
    var redis = data.redis;
    var sessions = data.sessions;
    var history = data.history || [];
    setText('version', instance.version);
    setText('uptime', fmtDuration(instance.uptimeSeconds));
    setText('updated', new Date(data.generatedAt).toLocaleTimeString('en-GB'));
    setState(instance.degraded ? 'degraded' : 'healthy', instance.degraded ? 'degraded' : 'healthy');
    showBanner('banner', '');

    setText('active-sessions', sessions.available ? fmtInt(sessions.active) : '–');
    setText(
      'active-users',
      sessions.available ? 'of ' + plural(sessions.userCount, 'user', 'users') : 'The session store did not answer.',
    );
    lineChart(byId('chart-sessions'), history, 'activeSessions', { label: 'Active sessions' });

    setText('signin-failures', fmtInt(counters.signinFailures));
    lineChart(byId('chart-signin'), history, 'signinFailures', { label: 'Sign-in failures', bad: true });

    setText('rate-limit-refusals', fmtInt(counters.rateLimitRefusals));
    barChart(byId('chart-ratelimit'), counters.rateLimits || []);

    setText('lock-conflicts', fmtInt(counters.lockConflicts));
    lineChart(byId('chart-locks'), history, 'lockConflicts', { label: 'Lock conflicts', bad: true });

    if (redis.mode === 'memory') {
      setText('redis-latency', 'n/a');
      setText('redis-mode', 'Memory store: one instance, no Redis.');
      setText('redis-memory', 'n/a');
      setText('redis-clients', 'No Redis configured.');
    } else {
      setText('redis-latency', fmtMs(redis.latencyMs));
      setText('redis-mode', redis.mode + ', ' + redis.status + ', ' + plural(redis.nodes, 'node', 'nodes'));
      setText('redis-memory', redis.memory ? fmtBytes(redis.memory.usedBytes) : 'n/a');
      setText(
        'redis-clients',
        typeof redis.clients === 'number'
          ? plural(redis.clients, 'client', 'clients') +
              ' connected, ' +
              (redis.memory && redis.memory.maxBytes > 0
                ? 'limit ' + fmtBytes(redis.memory.maxBytes) + ' (' + redis.memory.policy + ')'
                : 'no memory limit')
          : redis.infoNotPermitted
            ? 'The ACL user may not run INFO.'
            : 'Unknown: Redis did not answer.',
      );
    }
    var noRedis = redis.mode === 'memory' ? 'memory store: no Redis' : 'Redis did not answer';
    lineChart(byId('chart-latency'), history, 'redisLatencyMs', {
      label: 'Redis latency',
      format: fmtMs,
      empty: noRedis,
    });
    lineChart(byId('chart-memory'), history, 'redisMemoryBytes', {
      label: 'Redis memory',
      format: fmtBytes,
      empty: redis.mode === 'memory' ? noRedis : 'memory unknown',
    });

    var flag = byId('degraded-flag');
    flag.textContent = instance.degraded ? 'yes' : 'no';
    flag.className = 'big ' + (instance.degraded ? 'bad' : 'good');
    setText(
      'degraded-detail',
      'Redis ' +
        redis.status +
        ', database ' +
        instance.database +
        ', rate limits ' +
        (instance.rateLimitsDegraded ? 'on the local fallback' : 'shared') +
        '.',
    );
    lineChart(byId('chart-degraded'), history, 'degraded', {
      label: 'Degraded',
      max: 1,
      step: true,
      bad: true,
      format: function (v) {
        return v ? 'yes' : 'no';
      },
      topLabel: function () {
        return 'degraded';
      },
    });

    renderSessions(data);
  }

  function messageRow(key, text) {
    var row = rows.get(key);
    if (!row) {
      row = el('tr', { class: 'message' }, [el('td', { colspan: 6 }, [text])]);
      rows.set(key, row);
    }
    return row;
  }

  function userRow(key) {
    var row = rows.get(key);
    if (!row) {
      row = el('tr', { class: 'user', 'data-testid': 'user-row' }, [el('th', { colspan: 6, scope: 'rowgroup' })]);
      rows.set(key, row);
    }
    return row;
  }

  function sessionRow(key, handle) {
    var row = rows.get(key);
    if (row) return row;
    var button = el('button', { type: 'button', 'data-testid': 'terminate', 'data-handle': handle }, ['Terminate']);
    row = el('tr', { class: 'session', 'data-testid': 'session-row', 'data-handle': handle }, [
      el('td', { class: 'who' }),
      el('td', { class: 'handle', title: handle }, [shortHandle(handle)]),
      el('td', { class: 'created' }),
      el('td', { class: 'seen' }),
      el('td', { class: 'requests' }),
      el('td', { class: 'action' }, [button]),
    ]);
    button.addEventListener('click', function () {
      void terminate(handle, button, row);
    });
    rows.set(key, row);
    return row;
  }

  function setCell(row, cls, text) {
    var cell = row.querySelector('.' + cls);
    if (cell && cell.textContent !== text) cell.textContent = text;
  }

  function renderSessions(data) {
    var body = byId('sessions-body');
    var sessions = data.sessions;
    var now = Date.parse(data.generatedAt);
    var wanted = [];
    if (!sessions.available) {
      wanted.push(messageRow('m:unavailable', 'Sessions could not be listed: the session store did not answer.'));
    } else if (sessions.users.length === 0) {
      wanted.push(messageRow('m:none', 'No live sessions.'));
    }
    sessions.users.forEach(function (user) {
      var group = userRow('u:' + user.label + ':' + user.sessions[0].handle);
      var th = group.firstChild;
      clear(th);
      th.appendChild(document.createTextNode('user ' + user.label));
      if (user.you) th.appendChild(el('span', { class: 'you' }, [' (you)']));
      th.appendChild(el('span', { class: 'count' }, [plural(user.sessionCount, 'session', 'sessions')]));
      wanted.push(group);
      user.sessions.forEach(function (session) {
        var row = sessionRow('s:' + session.handle, session.handle);
        setCell(row, 'created', fmtTime(session.createdAt));
        setCell(row, 'seen', fmtAgo(now - Date.parse(session.lastSeenAt)));
        setCell(row, 'requests', fmtInt(session.requestCount));
        var button = row.querySelector('button');
        if (session.current && !button.disabled) {
          button.disabled = true;
          button.textContent = 'This session';
          button.title = 'Your own session: sign out instead.';
        }
        wanted.push(row);
      });
    });
    var keep = new Set(wanted);
    rows.forEach(function (row, key) {
      if (!keep.has(row)) {
        rows.delete(key);
        if (row.parentNode) row.parentNode.removeChild(row);
      }
    });
    wanted.forEach(function (row, i) {
      if (body.children[i] !== row) body.insertBefore(row, body.children[i] || null);
    });
    while (body.children.length > wanted.length) body.removeChild(body.lastChild);
    var more = byId('sessions-more');
    more.hidden = !(sessions.hiddenUsers > 0);
    more.textContent =
      sessions.hiddenUsers > 0
        ? plural(sessions.hiddenUsers, 'more user', 'more users') + ' with live sessions not listed (counted above).'
        : '';
  }

  async function errorMessage(response) {
    try {
      var body = await response.json();
      if (body && body.error && typeof body.error.message === 'string') return body.error.message;
    } catch (error) {
      // Not JSON.
    }
    return 'the service answered ' + response.status;
  }

  async function csrfToken() {
    var response = await fetch('/api/v1/auth/csrf', {
      credentials: 'same-origin',
      cache: 'no-store',
      headers: { Accept: 'application/json' },
    });
    if (!response.ok) throw new Error(await errorMessage(response));
    var body = await response.json();
    return body.data.csrfToken;
  }

  async function terminate(handle, button, row) {
    button.disabled = true;
    button.textContent = 'Ending…';
    try {
      var token = await csrfToken();
      var response = await fetch('/admin/api/sessions/' + encodeURIComponent(handle) + '/terminate', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'X-CSRF-Token': token, Accept: 'application/json' },
      });
      if (response.status === 204 || response.status === 404) {
        row.classList.add('ended');
        button.textContent = 'Ended';
        showBanner(
          'notice',
          'Session ' + shortHandle(handle) + (response.status === 204 ? ' ended.' : ' had already ended.'),
          'info',
        );
        pollNow();
        return;
      }
      if (response.status === 401) {
        stop('Your session has ended: sign in again, then reload this page.');
        return;
      }
      throw new Error(await errorMessage(response));
    } catch (error) {
      button.disabled = false;
      button.textContent = 'Terminate';
      showBanner('notice', 'Could not end session ' + shortHandle(handle) + ': ' + error.message + '.', 'info');
    }
  }

  function stop(message) {
    stopped = true;
    clearTimeout(timer);
    setState('signed out', 'stale');
    showBanner('banner', message);
  }

  function stale(message) {
    setState('stale', 'stale');
    showBanner('banner', message + ' The numbers shown are from ' + byId('updated').textContent + '.');
  }

  function schedule(ms) {
    clearTimeout(timer);
    if (!stopped) timer = setTimeout(poll, ms);
  }

  function pollNow() {
    schedule(0);
  }

  async function poll() {
    if (stopped) return;
    if (inFlight) {
      again = true;
      return;
    }
    if (document.hidden) {
      schedule(POLL_MS);
      return;
    }
    inFlight = true;
    var delay = POLL_MS;
    try {
      var response = await fetch('/admin/api/overview', {
        credentials: 'same-origin',
        cache: 'no-store',
        headers: { Accept: 'application/json' },
      });
      if (response.status === 401) {
        stop('Your session has ended: sign in again, then reload this page.');
      } else if (response.status === 403) {
        stop('This account may not see the operations dashboard.');
      } else if (response.status === 429) {
        var after = Number(response.headers.get('Retry-After'));
        delay = Math.max(POLL_MS, (after > 0 ? after : 5) * 1000);
        stale('Rate limited: next try in ' + Math.round(delay / 1000) + ' s.');
      } else if (!response.ok) {
        stale('The service answered ' + response.status + '.');
      } else {
        var body = await response.json();
        render(body.data);
      }
    } catch (error) {
      stale('The service did not answer.');
    } finally {
      inFlight = false;
      if (again) {
        again = false;
        delay = 0;
      }
      schedule(delay);
    }
  }

  document.addEventListener('visibilitychange', function () {
    if (!document.hidden) pollNow();
  });
  void poll();
})();
`;
