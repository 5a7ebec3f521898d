/**
 * The load of the failover tests (packages/server/test/faults/failover.test.ts): client loops
 * that sign in, validate sessions by cookie, session token and access token, take, renew, write
 * under and release the fenced edit locks of shared forms, and spend public-form nonces, with
 * every answer recorded with its time, every lock acquire with its fencing token, and every
 * renewal or write that Redis confirmed.
 */
import { setTimeout as sleep } from 'node:timers/promises';

import { Client, type Answer } from '../helpers/client.js';

export const PASSWORD = 'correct horse battery staple';
export const FIELDS = [{ name: 'a', label: 'A', type: 'text' }] as const;

export type Op = 'signin' | 'me' | 'form' | 'lock' | 'renew' | 'put' | 'unlock' | 'nonce-issue' | 'nonce-use';

export interface Outcome {
  readonly op: Op;
  readonly status: number;
  readonly code: string;
  readonly startMs: number;
  readonly endMs: number;
  readonly detail: string;
  /** Locks: when the lock was acquired; nonce-use: when the nonce was issued. */
  readonly sinceMs: number | undefined;
}

export interface Acquire {
  readonly form: string;
  readonly owner: string;
  readonly token: string;
  readonly fence: number;
  readonly startMs: number;
  readonly endMs: number;
}

/** A successful renewal or write under a lock: Redis confirmed the holder then. */
interface Confirm {
  readonly op: 'renew' | 'put';
  readonly form: string;
  readonly token: string;
  readonly fence: number;
  readonly startMs: number;
  readonly endMs: number;
}

interface SignedIn {
  readonly owner: string;
  readonly client: Client;
  readonly sessionId: string;
  readonly signedInMs: number;
}

interface LockBody {
  readonly data: { readonly lock: { readonly token: string; readonly fencingToken: number } };
}

interface SignInBody {
  readonly data: {
    readonly sessionToken: string;
    readonly accessToken: string;
    readonly csrfToken: string;
    readonly session: { readonly id: string };
    readonly user: { readonly id: string; readonly email: string; readonly organizationId: string };
  };
}

export function errorCode(answer: Answer): string {
  return (answer.json as { error?: { code?: string } }).error?.code ?? '';
}

export function lockOf(answer: Answer): { token: string; fence: number } {
  const { token, fencingToken } = (answer.json as LockBody).data.lock;
  return { token, fence: fencingToken };
}

/** The whole record of one run, and the client loops that make it. */
export class Load {
  readonly outcomes: Outcome[] = [];
  readonly acquires: Acquire[] = [];
  readonly confirms: Confirm[] = [];
  readonly sessions: SignedIn[] = [];
  stopped = false;

  constructor(readonly base: string) {}

  async call(op: Op, send: () => Promise<Answer>, sinceMs?: number): Promise<Answer | undefined> {
    const startMs = Date.now();
    try {
      const answer = await send();
      this.outcomes.push({
        op,
        status: answer.status,
        code: errorCode(answer),
        startMs,
        endMs: Date.now(),
        detail: answer.status >= 400 ? answer.text.slice(0, 300) : '',
        sinceMs,
      });
      return answer;
    } catch (error) {
      // The service did not answer at all (a crash, a reset connection): never acceptable.
      this.outcomes.push({
        op,
        status: 0,
        code: 'NO_ANSWER',
        startMs,
        endMs: Date.now(),
        detail: String(error),
        sinceMs,
      });
      return undefined;
    }
  }

  /** A new session for `email`, recorded; undefined when sign-in did not answer 200. */
  async signIn(owner: string, email: string): Promise<Client | undefined> {
    const client = new Client(this.base);
    const answer = await this.call('signin', () =>
      client.post('/api/v1/auth/signin', { email, password: PASSWORD }),
    );
    if (answer?.status !== 200) return undefined;
    const data = (answer.json as SignInBody).data;
    Object.assign(client, {
      sessionToken: data.sessionToken,
      accessToken: data.accessToken,
      csrfToken: data.csrfToken,
      sessionId: data.session.id,
      user: { ...data.user, roles: [] },
    });
    this.sessions.push({ owner, client, sessionId: data.session.id, signedInMs: Date.now() });
    return client;
  }

  /** GET /api/v1/me; a 200 for another session than asked is recorded as an error of its own. */
  async validate(client: Client, as: 'cookie' | 'session-bearer' | 'access-bearer'): Promise<boolean> {
    const answer = await this.call('me', () => client.get('/api/v1/me', { as }));
    if (answer?.status !== 200) return false;
    const id = (answer.json as { data: { session: { id: string } } }).data.session.id;
    if (id === client.sessionId) return true;
    this.outcomes.push({
      op: 'me',
      status: -1,
      code: 'WRONG_SESSION',
      startMs: Date.now(),
      endMs: Date.now(),
      detail: `${id} for ${String(client.sessionId)}`,
      sinceMs: undefined,
    });
    return false;
  }

  private recordAcquire(form: string, owner: string, answer: Answer, startMs: number): Acquire {
    const { token, fence } = lockOf(answer);
    const acquire = { form, owner, token, fence, startMs, endMs: Date.now() };
    this.acquires.push(acquire);
    return acquire;
  }

  /**
   * One edit-lock cycle on `form`: take, renew with X-Lock-Token, write under it, release.
   * Returns whether every step answered as it does with Redis up (a refusal while another
   * holds it included); releases that may not have happened are left in `unreleased`.
   */
  async lockCycle(
    client: Client,
    owner: string,
    form: string,
    unreleased: Array<{ form: string; acquire: Acquire }>,
  ): Promise<boolean> {
    const path = `/api/v1/forms/${form}/lock`;
    const startMs = Date.now();
    const taken = await this.call('lock', () => client.post(path, undefined, { as: 'session-bearer' }));
    if (taken?.status === 409) return true;
    if (taken?.status !== 200) return false;
    let held: Acquire | undefined = this.recordAcquire(form, owner, taken, startMs);
    let healthy = true;

    const renewStart = Date.now();
    const renewed = await this.call(
      'renew',
      () =>
        client.post(path, undefined, {
          as: 'session-bearer',
          headers: { 'x-lock-token': held?.token ?? '' },
        }),
      held.startMs,
    );
    if (renewed?.status === 200) {
      const lock = lockOf(renewed);
      if (lock.token === held.token) {
        this.confirms.push({
          op: 'renew',
          form,
          token: lock.token,
          fence: lock.fence,
          startMs: renewStart,
          endMs: Date.now(),
        });
        if (lock.fence !== held.fence) {
          this.outcomes.push({
            op: 'renew',
            status: -1,
            code: 'FENCE_CHANGED_ON_RENEW',
            startMs: renewStart,
            endMs: Date.now(),
            detail: `${String(held.fence)} -> ${String(lock.fence)}`,
            sinceMs: held.startMs,
          });
        }
      } else {
        // The lock was gone and free: the stale token got a new lock, which is an acquire.
        held = this.recordAcquire(form, owner, renewed, renewStart);
      }
    } else {
      healthy = false;
      if (renewed?.status === 409) held = undefined;
    }
    if (!held) return false;
    const lock: Acquire = held;

    const putStart = Date.now();
    const written = await this.call(
      'put',
      () =>
        client.request('PUT', `/api/v1/forms/${form}`, {
          as: 'session-bearer',
          body: { title: `${owner} fence ${String(lock.fence)}`, fields: FIELDS },
          headers: { 'x-lock-token': lock.token },
        }),
      lock.startMs,
    );
    if (written?.status === 200) {
      this.confirms.push({
        op: 'put',
        form,
        token: lock.token,
        fence: lock.fence,
        startMs: putStart,
        endMs: Date.now(),
      });
    } else {
      healthy = false;
    }
    if (!(await this.release(client, form, lock))) {
      healthy = false;
      unreleased.push({ form, acquire: lock });
    }
    return healthy;
  }

  /** DELETE the lock; false when the answer leaves it unknown whether it was released. */
  async release(client: Client, form: string, lock: Acquire): Promise<boolean> {
    const answer = await this.call(
      'unlock',
      () =>
        client.request('DELETE', `/api/v1/forms/${form}/lock`, {
          as: 'session-bearer',
          headers: { 'x-lock-token': lock.token },
        }),
      lock.startMs,
    );
    // 409: it was lost and someone else holds it now: nothing of ours left to release.
    return answer?.status === 204 || answer?.status === 409;
  }

  /** Issues a nonce for `form` and spends it once. */
  async nonceCycle(visitor: Client, form: string): Promise<boolean> {
    const page = await this.call('nonce-issue', () => visitor.get(`/api/v1/public/forms/${form}`));
    if (page?.status !== 200) return false;
    const issuedMs = Date.now();
    const { nonce } = (page.json as { data: { nonce: string } }).data;
    const used = await this.call(
      'nonce-use',
      () => visitor.post(`/api/v1/public/forms/${form}/responses`, { nonce, answers: { a: 'x' } }),
      issuedMs,
    );
    return used?.status === 201;
  }

  async createForm(client: Client, title: string): Promise<string | undefined> {
    const answer = await this.call('form', () =>
      client.post('/api/v1/forms', { title, fields: FIELDS }, { as: 'session-bearer' }),
    );
    if (answer?.status !== 201) return undefined;
    return (answer.json as { data: { form: { id: string } } }).data.form.id;
  }

  /** One client loop: sign in now and then, validate old and new sessions, locks, nonces. */
  async worker(index: number, email: string, forms: readonly string[]): Promise<void> {
    const owner = `w${String(index)}`;
    const visitor = new Client(this.base);
    const unreleased: Array<{ form: string; acquire: Acquire }> = [];
    let current: Client | undefined;
    for (let round = 0; !this.stopped; round++) {
      if (round % 4 === 0 || !current) current = (await this.signIn(owner, email)) ?? current;
      const mine = this.sessions.filter((session) => session.owner === owner);
      const older = mine[Math.floor(Math.random() * mine.length)];
      if (current) {
        await this.validate(
          current,
          (['cookie', 'session-bearer', 'access-bearer'] as const)[round % 3] ?? 'cookie',
        );
        if (older) await this.validate(older.client, 'session-bearer');
        // Releases that answered 503 are retried until they are known to be done.
        for (const pending of unreleased.splice(0)) {
          if (!(await this.release(current, pending.form, pending.acquire))) unreleased.push(pending);
        }
        const form = forms[(index + round) % forms.length];
        if (form !== undefined) await this.lockCycle(current, owner, form, unreleased);
      }
      const form = forms[round % forms.length];
      if (form !== undefined) await this.nonceCycle(visitor, form);
      await sleep(5 + Math.random() * 20);
    }
    // Done: what this loop may still hold is released (Redis is back by now).
    for (let attempt = 0; unreleased.length > 0 && current && attempt < 20; attempt++) {
      for (const pending of unreleased.splice(0)) {
        if (!(await this.release(current, pending.form, pending.acquire))) unreleased.push(pending);
      }
      if (unreleased.length > 0) await sleep(250);
    }
  }

  /**
   * Everything a user does, once, on a fresh form (a lock whose 503 acquire still happened on
   * the server would block its form for the lock's TTL): true when every step answered as with
   * Redis up.
   */
  async roundTrip(email: string, label: string): Promise<boolean> {
    const client = await this.signIn(label, email);
    if (!client) return false;
    if (!(await this.validate(client, 'session-bearer'))) return false;
    const form = await this.createForm(client, `${label} round trip`);
    if (form === undefined) return false;
    const unreleased: Array<{ form: string; acquire: Acquire }> = [];
    const before = this.acquires.length;
    if (!(await this.lockCycle(client, label, form, unreleased))) return false;
    if (this.acquires.length === before) return false;
    return this.nonceCycle(new Client(this.base), form);
  }
}
