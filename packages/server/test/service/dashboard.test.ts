/**
 * The operations dashboard (/admin) in a real headless Chromium, driven by playwright-core: it
 * loads under its strict CSP without a console error, shows live numbers that follow sign-ins,
 * and its Terminate button ends a session. The last state of the page is saved to
 * test-output/dashboard.png.
 */
import assert from 'node:assert/strict';
import { accessSync, constants, mkdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

import { ADMIN_CSP } from '../../src/service/admin-page/page.js';
import { changeServiceRole } from '../../src/service/service-roles.js';
import { Client, freshEmail } from '../helpers/client.js';
import { startService, type RunningService } from '../helpers/start-service.js';

const ADMIN_EMAIL = 'admin@clinic.example';
const OUTPUT_DIR = fileURLToPath(new URL('../../test-output/', import.meta.url));
const SCREENSHOT = join(OUTPUT_DIR, 'dashboard.png');

/** Debian's chromium (or chromium-browser, or CHROMIUM_PATH); install-test-deps.sh installs it. */
function chromiumPath(): string {
  const candidates = [
    ...(process.env.CHROMIUM_PATH ? [process.env.CHROMIUM_PATH] : []),
    ...(process.env.PATH ?? '')
      .split(delimiter)
      .filter((dir) => dir !== '')
      .flatMap((dir) => [join(dir, 'chromium'), join(dir, 'chromium-browser')]),
    '/usr/bin/chromium',
    '/usr/bin/chromium-browser',
  ];
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not there; the next one.
    }
  }
  throw new Error('no chromium found (scripts/install-test-deps.sh installs it; or set CHROMIUM_PATH)');
}

/** Waits until `read` gives a value `accept` takes; fails with the last value after `timeoutMs`. */
async function eventually<T>(
  what: string,
  read: () => Promise<T>,
  accept: (value: T) => boolean,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = await read();
    if (accept(last)) return last;
    if (Date.now() > deadline)
      assert.fail(`${what}: still ${JSON.stringify(last)} after ${String(timeoutMs)} ms`);
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
}

/** The number an element with `data-testid` shows, or NaN while it shows none. */
async function shownNumber(page: Page, testId: string): Promise<number> {
  const text = (await page.getByTestId(testId).textContent()) ?? '';
  return /^\d[\d,]*$/.test(text.trim()) ? Number(text.trim().replace(/,/g, '')) : Number.NaN;
}

interface Overview {
  data: {
    sessions: {
      available: boolean;
      active: number;
      users: { label: string; sessions: { handle: string }[] }[];
    };
    counters: { signinFailures: number; rateLimits: { policy: string }[] };
    redis: { mode: string };
    history: unknown[];
  };
}

describe('the operations dashboard in headless Chromium', { timeout: 60_000 }, () => {
  let running: RunningService;
  let base: string;
  let admin: Client;
  let browser: Browser | undefined;
  let context: BrowserContext | undefined;

  before(async () => {
    running = await startService({});
    base = running.base;
    admin = new Client(base);
    await admin.signUp(ADMIN_EMAIL);
    // What `gatehouse users grant-role EMAIL admin` runs, in-process (the memory store lives here).
    const granted = await changeServiceRole(running.service.context, {
      email: ADMIN_EMAIL,
      role: 'admin',
      change: 'grant',
    });
    assert.equal(granted.kind, 'changed');
    await admin.signIn(ADMIN_EMAIL);
    assert.ok(admin.user?.roles.includes('admin'));
    browser = await chromium.launch({
      executablePath: chromiumPath(),
      args: ['--no-sandbox', '--disable-dev-shm-usage'],
      timeout: 20_000,
    });
  });

  after(async () => {
    await context?.close().catch(() => undefined);
    await browser?.close().catch(() => undefined);
    await running.close();
  });

  it('is for admins only: 401 without a session, 403 for a member', async () => {
    const anonymous = new Client(base);
    const member = new Client(base);
    const memberEmail = freshEmail();
    await member.signUp(memberEmail);
    await member.signIn(memberEmail);
    for (const path of ['/admin', '/admin/dashboard.js', '/admin/dashboard.css', '/admin/api/overview']) {
      assert.equal((await anonymous.get(path)).status, 401, path);
      const refused = await member.get(path);
      assert.equal(refused.status, 403, path);
      assert.equal((refused.json as { error: { code: string } }).error.code, 'FORBIDDEN');
    }
    const terminate = await member.post(`/admin/api/sessions/${String(admin.sessionId)}/terminate`);
    assert.equal(terminate.status, 403);
    assert.equal((await admin.get('/api/v1/me')).status, 200, 'the member ended nothing');
  });

  it('serves the page under a strict CSP, its assets with their types, and documents the routes', async () => {
    const page = await admin.get('/admin');
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    assert.equal(page.headers.get('content-security-policy'), ADMIN_CSP);
    assert.equal(page.headers.get('cache-control'), 'no-store');
    assert.match(page.text, /gatehouse operations/);
    // Nothing inline: every script has a src, no style element or attribute.
    assert.doesNotMatch(page.text, /<script(?![^>]*\ssrc=)[^>]*>/);
    assert.doesNotMatch(page.text, /<style|\sstyle=|\son[a-z]+=/i);
    const script = await admin.get('/admin/dashboard.js');
    assert.equal(script.status, 200);
    assert.match(script.headers.get('content-type') ?? '', /^text\/javascript/);
    assert.equal(script.headers.get('cache-control'), 'no-store');
    assert.doesNotMatch(script.text, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(/);
    const style = await admin.get('/admin/dashboard.css');
    assert.equal(style.status, 200);
    assert.match(style.headers.get('content-type') ?? '', /^text\/css/);
    assert.equal(style.headers.get('cache-control'), 'no-store');

    const overview = await admin.get('/admin/api/overview');
    assert.equal(overview.status, 200, overview.text);
    const body = overview.json as Overview;
    assert.equal(body.data.sessions.available, true);
    assert.ok(body.data.sessions.active >= 1);
    assert.equal(body.data.redis.mode, 'memory');
    assert.deepEqual(body.data.counters.rateLimits.map((entry) => entry.policy).sort(), [
      'account',
      'anonymous',
      'api',
      'auth',
      'pdf',
      'public',
    ]);
    assert.doesNotMatch(overview.text, /@|198\.51\./, 'no email or address in the overview');

    // Termination: CSRF as for every cookie-authenticated unsafe request; 404 for no live session.
    const forged = await admin.post('/admin/api/sessions/unknown/terminate', undefined, { bare: true });
    assert.equal(forged.status, 403);
    assert.equal((forged.json as { error: { code: string } }).error.code, 'CSRF_INVALID');
    const unknown = await admin.post(`/admin/api/sessions/${'A'.repeat(43)}/terminate`);
    assert.equal(unknown.status, 404);
    assert.equal((unknown.json as { error: { code: string } }).error.code, 'NOT_FOUND');

    const openapi = (await admin.get('/openapi.json')).json as {
      paths: Record<string, Record<string, { tags?: string[]; summary?: string } | undefined> | undefined>;
    };
    for (const [path, method] of [
      ['/admin', 'get'],
      ['/admin/dashboard.js', 'get'],
      ['/admin/dashboard.css', 'get'],
      ['/admin/api/overview', 'get'],
      ['/admin/api/sessions/{handle}/terminate', 'post'],
    ] as const) {
      const operation = openapi.paths[path]?.[method];
      assert.ok(operation?.summary, `${method} ${path} in /openapi.json`);
      assert.deepEqual(operation.tags, ['operations']);
    }
  });

  it('loads in Chromium, follows sign-ins live and terminates a session', { timeout: 45_000 }, async () => {
    assert.ok(browser);
    const cookie = admin.cookie ?? '';
    const separator = cookie.indexOf('=');
    assert.ok(separator > 0, 'the admin has a session cookie');
    const cookieName = cookie.slice(0, separator);
    assert.equal(cookieName, 'gh_session');
    context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
    await context.addCookies([{ name: cookieName, value: cookie.slice(separator + 1), url: base }]);
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('console', (message) => {
      const text = message.text();
      if (message.type() === 'error' || /Content Security Policy/i.test(text)) {
        problems.push(`console ${message.type()}: ${text}`);
      }
    });
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('requestfailed', (request) => problems.push(`request failed: ${request.url()}`));
    page.on('response', (response) => {
      if (response.status() >= 400) problems.push(`${String(response.status())} for ${response.url()}`);
    });

    mkdirSync(OUTPUT_DIR, { recursive: true });
    try {
      const response = await page.goto(`${base}/admin`, { waitUntil: 'load' });
      assert.equal(response?.status(), 200);
      assert.equal(await page.title(), 'gatehouse operations');

      const before = await eventually(
        'active sessions shown',
        () => shownNumber(page, 'active-sessions'),
        (n) => n >= 1,
      );
      const failuresBefore = await shownNumber(page, 'signin-failures');
      assert.ok(Number.isInteger(failuresBefore));
      assert.equal((await page.getByTestId('degraded-flag').textContent())?.trim(), 'no');
      assert.equal((await page.getByTestId('degraded').textContent())?.trim(), 'healthy');
      assert.ok(Number.isInteger(await shownNumber(page, 'rate-limit-refusals')));
      assert.ok(Number.isInteger(await shownNumber(page, 'lock-conflicts')));
      assert.match((await page.getByTestId('redis-mode').textContent()) ?? '', /Memory store/);
      // The admin's own session is listed, and may not be ended from here.
      const own = page.locator(`button[data-testid="terminate"][data-handle="${String(admin.sessionId)}"]`);
      await own.waitFor({ timeout: 10_000 });
      assert.equal(await own.isDisabled(), true);

      // Two people sign in, one sign-in fails: the page follows within a few polls.
      const first = new Client(base);
      const second = new Client(base);
      const wrong = new Client(base);
      const [firstEmail, secondEmail] = [freshEmail(), freshEmail()];
      await first.signUp(firstEmail);
      await second.signUp(secondEmail);
      await first.signIn(firstEmail);
      await second.signIn(secondEmail);
      const refused = await wrong.post('/api/v1/auth/signin', {
        email: freshEmail(),
        password: 'not the password at all',
      });
      assert.equal(refused.status, 401);
      const during = await eventually(
        'active sessions after two sign-ins',
        () => shownNumber(page, 'active-sessions'),
        (n) => n >= before + 2,
      );
      await eventually(
        'sign-in failures after a wrong password',
        () => shownNumber(page, 'signin-failures'),
        (n) => n >= failuresBefore + 1,
      );
      // Charts are drawn (SVG built by the script), and nothing personal is on the page.
      await eventually(
        'the sessions chart has a line',
        () => page.locator('#chart-sessions path.line').count(),
        (n) => n > 0,
      );
      assert.ok((await page.locator('#chart-ratelimit rect.track').count()) >= 4, 'a bar per policy');
      const html = await page.content();
      assert.doesNotMatch(html, /@clinic\.example|198\.51\./);

      // Terminate the first user's session from the page.
      const target = page.locator(
        `button[data-testid="terminate"][data-handle="${String(first.sessionId)}"]`,
      );
      await target.waitFor({ timeout: 10_000 });
      assert.equal(await target.isEnabled(), true);
      await target.click();
      await eventually(
        'the page says the session ended',
        async () => (await page.getByTestId('notice').textContent()) ?? '',
        (text) => /ended\./.test(text),
      );
      const gone = await first.get('/api/v1/me');
      assert.equal(gone.status, 401, gone.text);
      assert.equal((gone.json as { error: { code: string } }).error.code, 'UNAUTHENTICATED');
      assert.equal((await second.get('/api/v1/me')).status, 200, 'the other session lives on');
      await eventually(
        'active sessions after the termination',
        () => shownNumber(page, 'active-sessions'),
        (n) => n === during - 1,
      );
      await eventually(
        "the ended session's row is gone",
        () => page.locator(`tr[data-testid="session-row"][data-handle="${String(first.sessionId)}"]`).count(),
        (n) => n === 0,
      );
      const audit = await running.service.context.audit
        .flush()
        .then(() =>
          running.service.context.db.query(
            "SELECT user_id, session_hash FROM audit_log WHERE type = 'admin.session-terminated'",
          ),
        );
      assert.deepEqual(audit.rows, [
        {
          user_id: admin.user?.id,
          session_hash: running.service.context.gh.keyRing.auditHash(String(first.sessionId)),
        },
      ]);

      assert.deepEqual(problems, [], 'no console errors, CSP violations or failed requests');
    } finally {
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
    }
  });
});
