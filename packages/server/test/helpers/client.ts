/**
 * A small HTTP client for the reference service tests: real requests over loopback, a cookie jar
 * of one session cookie, and the headers a browser page of the service would send.
 */
import assert from 'node:assert/strict';

export interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  /**
   * The parsed JSON body (an empty object when there was none or it was not JSON), read loosely
   * as the tests do; eslint.config.js allows that here and in test/service only.
   */
  readonly json: any;
}

export interface RequestOptions {
  readonly body?: unknown;
  /** Sent as is (no JSON encoding). */
  readonly rawBody?: string;
  readonly headers?: Record<string, string>;
  /** How to authenticate: the cookie (default when there is one), a bearer, or nothing. */
  readonly as?: 'cookie' | 'session-bearer' | 'access-bearer' | 'anonymous';
  /** For cookie requests: leave out the CSRF token and Origin a page would send. */
  readonly bare?: boolean;
}

let nextIp = 1;

export class Client {
  /** Set while a suite runs the service with secure cookies. */
  static secureOrigins = false;
  cookie: string | undefined;
  csrfToken: string | undefined;
  sessionToken: string | undefined;
  accessToken: string | undefined;
  sessionId: string | undefined;
  user: { id: string; email: string; organizationId: string; roles: string[] } | undefined;
  /** Each client comes from its own address (the service trusts one proxy in the tests). */
  readonly ip: string;

  /** The Origin a page of the service sends: https behind a TLS proxy when cookies are secure. */
  readonly origin: string;

  constructor(readonly base: string) {
    this.origin = Client.secureOrigins ? base.replace(/^http:/, 'https:') : base;
    const n = nextIp++;
    this.ip = `198.51.${String(Math.floor(n / 250) % 250)}.${String((n % 250) + 1)}`;
  }

  async request(method: string, path: string, options: RequestOptions = {}): Promise<Answer> {
    const headers: Record<string, string> = { 'x-forwarded-for': this.ip, ...options.headers };
    const as = options.as ?? (this.cookie ? 'cookie' : 'anonymous');
    if (as === 'cookie' && this.cookie) {
      headers.cookie = this.cookie;
      if (!options.bare && !['GET', 'HEAD'].includes(method)) {
        if (!('origin' in headers)) headers.origin = this.origin;
        if (this.csrfToken && !('x-csrf-token' in headers)) headers['x-csrf-token'] = this.csrfToken;
      }
    }
    if (as === 'session-bearer') headers.authorization = `Bearer ${String(this.sessionToken)}`;
    if (as === 'access-bearer') headers.authorization = `Bearer ${String(this.accessToken)}`;
    let body: string | undefined = options.rawBody;
    if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['content-type'] ??= 'application/json';
    } else if (body !== undefined) {
      headers['content-type'] ??= 'application/json';
    }
    const response = await fetch(this.base + path, {
      method,
      headers,
      ...(body === undefined ? {} : { body }),
    });
    const text = await response.text();
    let json: unknown = {};
    try {
      if (text !== '') json = JSON.parse(text);
    } catch {
      // Not JSON (a PDF, an event stream): the text is there.
    }
    const setCookie = response.headers.get('set-cookie');
    if (setCookie) {
      const [pair] = setCookie.split(';');
      const value = pair?.slice(pair.indexOf('=') + 1) ?? '';
      this.cookie = value === '' ? undefined : pair;
    }
    return { status: response.status, headers: response.headers, text, json };
  }

  get(path: string, options?: RequestOptions): Promise<Answer> {
    return this.request('GET', path, options);
  }

  post(path: string, body?: unknown, options: RequestOptions = {}): Promise<Answer> {
    return this.request('POST', path, body === undefined ? options : { ...options, body });
  }

  async signUp(
    email: string,
    password = 'correct horse battery staple',
    inviteCode?: string,
  ): Promise<Answer> {
    const answer = await this.post(
      '/api/v1/auth/signup',
      { email, password, ...(inviteCode ? { inviteCode } : {}) },
      { as: 'anonymous' },
    );
    assert.equal(answer.status, 201, answer.text);
    return answer;
  }

  async signIn(email: string, password = 'correct horse battery staple'): Promise<Answer> {
    const answer = await this.post('/api/v1/auth/signin', { email, password });
    assert.equal(answer.status, 200, answer.text);
    const data = answer.json.data as unknown as {
      csrfToken: string;
      sessionToken: string;
      accessToken: string;
      session: { id: string };
      user: { id: string; email: string; organizationId: string; roles: string[] };
    };
    this.csrfToken = data.csrfToken;
    this.sessionToken = data.sessionToken;
    this.accessToken = data.accessToken;
    this.sessionId = data.session.id;
    this.user = data.user;
    return answer;
  }
}

/** A fresh email for each call. */
let emails = 0;
export function freshEmail(): string {
  emails += 1;
  return `user${String(emails)}.${String(process.pid)}.${Math.random().toString(36).slice(2, 8)}@clinic.example`;
}

/** Reads server-sent events until `until` returns true or the time runs out. */
export async function readEvents(
  url: string,
  headers: Record<string, string>,
  onOpen: () => Promise<void>,
  timeoutMs: number,
): Promise<{
  status: number;
  headers: Headers;
  contentType: string | null;
  rateLimitLimit: string | null;
  text: string;
  elapsedMs: number;
}> {
  const controller = new AbortController();
  const timer = setTimeout(() => {
    controller.abort();
  }, timeoutMs);
  const response = await fetch(url, { headers, signal: controller.signal });
  let text = '';
  let elapsedMs = 0;
  try {
    const reader = response.body?.getReader();
    assert.ok(reader);
    const decoder = new TextDecoder();
    let opened = false;
    let started = 0;
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) break;
      text += decoder.decode(chunk.value, { stream: true });
      if (!opened && text.includes('\n\n')) {
        opened = true;
        await onOpen();
        started = Date.now();
      }
      elapsedMs = Date.now() - started;
    }
  } catch (error) {
    if (!controller.signal.aborted) throw error;
  } finally {
    clearTimeout(timer);
  }
  return {
    status: response.status,
    headers: response.headers,
    contentType: response.headers.get('content-type'),
    rateLimitLimit: response.headers.get('x-ratelimit-limit'),
    text,
    elapsedMs,
  };
}
