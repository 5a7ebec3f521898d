/**
 * What the fuzzer knows of the service besides its routes, made before the cases run: owners,
 * members, outsiders and admins with their sessions, CSRF and access tokens, ended sessions,
 * forms, responses, invites, and ways to mint more sessions, nonces, members and invites.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';

import { createInvite } from '../../../src/service/invites.js';
import { hashPassword } from '../../../src/service/passwords.js';
import { insertOrganization, insertUser, MEMBER_ROLES, OWNER_ROLES } from '../../../src/service/users.js';
import { Client, freshEmail } from '../../helpers/client.js';
import type { RunningService } from '../../helpers/start-service.js';

export const PASSWORD = 'correct horse battery staple';

/** Routes whose acting session may be ended by the request: each case mints its own. */
const VICTIM_ROUTES = new Set([
  'POST /api/v1/auth/signin',
  'POST /api/v1/auth/signout',
  'DELETE /api/v1/sessions',
  'DELETE /api/v1/sessions/{id}',
  'POST /admin/api/sessions/{handle}/terminate',
]);

export interface User {
  readonly id: string;
  readonly email: string;
  readonly organizationId: string;
  readonly roles: readonly string[];
}

export interface Principal {
  readonly user: User;
  readonly handle: string;
  readonly token: string;
  readonly csrf: string;
  readonly access: string;
}

export interface Fixtures {
  readonly running: RunningService;
  readonly port: number;
  readonly origin: string;
  readonly host: string;
  readonly members: readonly Principal[];
  /**
   * Owners of organizations of their own (the first is the owner of the members' organization):
   * the owner-only routes spread over them, each within its own API allowance.
   */
  readonly owners: readonly Principal[];
  readonly outsiders: readonly Principal[];
  readonly admins: readonly Principal[];
  /** A member the fuzz never uses: a fresh API allowance for the flood checks. */
  readonly quiet: Principal;
  /** Ended sessions: their tokens must be refused. */
  readonly revoked: readonly Principal[];
  /** One user per session-ending route, whose sessions each case mints afresh. */
  readonly victims: ReadonlyMap<string, User>;
  /** Sessions the admin terminate route may end. */
  readonly terminateTarget: User;
  /** A form with a field of every type (and one named `constructor`), never rewritten. */
  readonly formPublic: string;
  /** The form the lock and update routes work on. */
  readonly formEdit: string;
  readonly formForeign: string;
  /** Responses of the caller's organization: the first submitted at set-up, the others by the run. */
  readonly responses: string[];
  readonly responseForeign: string;
  readonly invites: string[];
  /** An invite code already used, and a form nonce already spent. */
  readonly usedInvite: string;
  readonly spentNonce: string;
  /** The newest edit-lock token per form, from the lock route's answers. */
  readonly lockTokens: Map<string, string>;
  mint(user: User): Promise<Principal>;
  nonce(formId: string): Promise<string>;
  /** A new member of the organization: someone to remove. */
  member(organizationId: string): Promise<User>;
  /** A new pending invite of the organization, made by its owner: something to revoke. */
  invite(owner: User): Promise<string>;
}

export interface Field {
  readonly name: string;
  readonly label: string;
  readonly type: string;
  readonly options?: readonly string[];
}

const PUBLIC_FIELDS: readonly Field[] = [
  { name: 'fullName', label: 'Full name', type: 'text' },
  { name: 'notes', label: 'Notes', type: 'textarea' },
  { name: 'age', label: 'Age', type: 'number' },
  { name: 'dob', label: 'Date of birth', type: 'date' },
  { name: 'email', label: 'Email', type: 'email' },
  { name: 'phone', label: 'Phone', type: 'phone' },
  { name: 'plan', label: 'Plan', type: 'select', options: ['basic', 'plus'] },
  { name: 'consent', label: 'Consent', type: 'checkbox' },
  { name: 'constructor', label: 'Named like a prototype member', type: 'text' },
];

export async function setUp(running: RunningService): Promise<Fixtures> {
  const { context } = running.service;
  const { gh, db } = context;
  const base = running.base;
  const url = new URL(base);
  const passwordHash = await hashPassword(PASSWORD);
  const organization = async () => {
    const id = randomUUID();
    await insertOrganization(db, id);
    return id;
  };
  const user = async (organizationId: string, roles: readonly string[] = MEMBER_ROLES): Promise<User> => {
    const made = { id: randomUUID(), email: freshEmail(), organizationId, roles };
    assert.ok(await insertUser(db, { ...made, passwordHash }));
    return made;
  };
  const mint = async (of: User): Promise<Principal> => {
    const { token, session } = await gh.sessions.create({
      userId: of.id,
      organizationId: of.organizationId,
      roles: of.roles,
      ip: '198.51.100.7',
      userAgent: 'service-fuzz',
      authMethod: 'password',
    });
    const [csrf, access] = await Promise.all([
      gh.csrf.issue(session),
      context.accessTokens.issue({ sub: of.id, sid: session.handle }),
    ]);
    return { user: of, handle: session.handle, token, csrf, access: access.token };
  };

  // The owner goes through the real sign-up and sign-in; the others are made directly (one
  // password hash for all), so that the per-user API limit is spread over many users.
  const owner = new Client(base);
  const ownerEmail = freshEmail();
  await owner.signUp(ownerEmail);
  await owner.signIn(ownerEmail);
  assert.ok(owner.user && owner.sessionId && owner.sessionToken && owner.csrfToken && owner.accessToken);
  const ownerUser: User = { ...owner.user };
  const ownerPrincipal: Principal = {
    user: ownerUser,
    handle: owner.sessionId,
    token: owner.sessionToken,
    csrf: owner.csrfToken,
    access: owner.accessToken,
  };
  assert.deepEqual(ownerUser.roles, OWNER_ROLES);
  const orgA = ownerUser.organizationId;
  const members = [ownerPrincipal];
  for (let i = 0; i < 9; i++) members.push(await mint(await user(orgA)));
  const owners = [ownerPrincipal];
  for (let i = 0; i < 3; i++) owners.push(await mint(await user(await organization(), OWNER_ROLES)));
  const quiet = await mint(await user(orgA));
  const orgB = await organization();
  const outsiders = [await mint(await user(orgB)), await mint(await user(orgB))];
  const orgC = await organization();
  const admins: Principal[] = [];
  for (let i = 0; i < 3; i++) admins.push(await mint(await user(orgC, ['member', 'admin'])));
  const revoked: Principal[] = [];
  for (let i = 0; i < 2; i++) {
    const ended = await mint(members[1 + i]?.user ?? ownerUser);
    assert.ok(await gh.sessions.revoke(ended.handle, { cause: 'signout' }));
    revoked.push(ended);
  }
  const victims = new Map<string, User>();
  for (const route of VICTIM_ROUTES) {
    victims.set(
      route,
      await (route.startsWith('POST /admin/') ? user(orgC, ['member', 'admin']) : user(orgA)),
    );
  }
  const terminateTarget = await user(orgA);

  const ownerCreates = async (body: unknown) => {
    const created = await owner.post('/api/v1/forms', body);
    assert.equal(created.status, 201, created.text);
    return String(created.json.data.form.id);
  };
  const formPublic = await ownerCreates({ title: 'Intake', fields: PUBLIC_FIELDS });
  const formEdit = await ownerCreates({
    title: 'Edit me',
    fields: [{ name: 'a', label: 'A', type: 'text' }],
  });
  const outsider = outsiders[0];
  assert.ok(outsider);
  const foreign = await new Client(base).request('POST', '/api/v1/forms', {
    as: 'anonymous',
    body: { title: 'Elsewhere', fields: [{ name: 'b', label: 'B', type: 'text' }] },
    headers: { authorization: `Bearer ${outsider.token}` },
  });
  assert.equal(foreign.status, 201, foreign.text);
  const formForeign = String(foreign.json.data.form.id);
  const submit = async (formId: string, answers: Record<string, unknown>) => {
    const visitor = new Client(base);
    const page = await visitor.get(`/api/v1/public/forms/${formId}`);
    assert.equal(page.status, 200, page.text);
    const sent = await visitor.post(`/api/v1/public/forms/${formId}/responses`, {
      nonce: page.json.data.nonce,
      answers,
    });
    assert.equal(sent.status, 201, sent.text);
    return { id: String(sent.json.data.response.id), nonce: String(page.json.data.nonce) };
  };
  const first = await submit(formPublic, { fullName: 'Jane Q. Patient', plan: 'plus', consent: true });
  const responseForeign = (await submit(formForeign, { b: 'elsewhere' })).id;
  const invites: string[] = [];
  for (let i = 0; i < 6; i++) {
    // Some bound to an email no fuzz sign-up uses: those are refused, and stay usable.
    const invite = await owner.post(
      '/api/v1/organizations/invites',
      i % 3 === 1 ? { email: freshEmail() } : undefined,
    );
    assert.equal(invite.status, 201, invite.text);
    invites.push(String(invite.json.data.inviteCode));
  }
  const usedInvite = invites.pop() ?? '';
  await new Client(base).signUp(freshEmail(), PASSWORD, usedInvite);
  return {
    running,
    port: Number(url.port),
    origin: base,
    host: url.host,
    members,
    owners,
    quiet,
    outsiders,
    admins,
    revoked,
    victims,
    terminateTarget,
    formPublic,
    formEdit,
    formForeign,
    responses: [first.id],
    responseForeign,
    invites,
    usedInvite,
    spentNonce: first.nonce,
    lockTokens: new Map(),
    mint,
    nonce: async (formId) => (await gh.nonces.issue(`form:${formId}`, { ttl: 30 * 60 * 1000 })).nonce,
    member: (organizationId) => user(organizationId),
    invite: async (of) => {
      const made = await createInvite(db, {
        organizationId: of.organizationId,
        createdBy: of.id,
        email: null,
      });
      assert.ok(made);
      return made.invite.id;
    },
  };
}
