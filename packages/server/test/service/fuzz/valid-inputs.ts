/**
 * Valid path ids and bodies for a route, from the fixtures: what a case starts from before it
 * makes anything hostile.
 */
import { PASSWORD, type Fixtures, type Principal, type User } from './fixtures.js';
import { base64url, nearly, randomishUuid } from './hostile-values.js';
import { fromSchema, randomFields, validAnswers } from './json-bodies.js';
import type { Rng } from './rng.js';
import type { RouteInfo } from './routes.js';

/** A real id for the route's parameter: the caller's own (mostly), or another organization's. */
export async function validId(
  route: RouteInfo,
  rng: Rng,
  fx: Fixtures,
  principal: Principal,
  clean: boolean,
): Promise<string> {
  const t = route.template;
  if (t.startsWith('/api/v1/responses/')) {
    // Responses the run submitted too (odd answers, forms whose fields it rewrote).
    return clean || rng.chance(0.8) ? rng.pick(fx.responses) : fx.responseForeign;
  }
  if (t.includes('/forms/')) {
    if (!clean && rng.chance(0.2)) return fx.formForeign;
    const editing = route.method !== 'GET' && !t.includes('/public/');
    return editing ? fx.formEdit : rng.chance(0.7) ? fx.formPublic : fx.formEdit;
  }
  if (t === '/api/v1/sessions/{id}') {
    // Another session of the same (victim) user, the current one, or someone else's.
    if (!clean && rng.chance(0.2)) return rng.pick(fx.members).handle;
    return rng.chance(0.7) ? (await fx.mint(principal.user)).handle : principal.handle;
  }
  if (t === '/admin/api/sessions/{handle}/terminate') {
    // Someone's session, or (when the caller's own session is a disposable one) the caller's.
    const own = principal.user === fx.victims.get(route.key) && rng.chance(0.3);
    return own ? principal.handle : (await fx.mint(fx.terminateTarget)).handle;
  }
  if (t === '/api/v1/organizations/members/{id}') {
    // A member of the caller's organization to remove (the caller themself, or someone else's).
    if (!clean && rng.chance(0.2)) return rng.pick([principal.user.id, rng.pick(fx.outsiders).user.id]);
    return (await fx.member(principal.user.organizationId)).id;
  }
  if (t === '/api/v1/organizations/invites/{id}') {
    // A pending invite of the caller's organization, or another organization's.
    if (!clean && rng.chance(0.2)) return fx.invite(rng.pick(fx.owners).user);
    return fx.invite(principal.user);
  }
  return rng.text(12);
}

export async function validBody(
  route: RouteInfo,
  index: number,
  rng: Rng,
  fx: Fixtures,
  formId: string | undefined,
  victim: User | undefined,
): Promise<unknown> {
  switch (route.key) {
    case 'POST /api/v1/auth/signup': {
      const orgA = Buffer.from(fx.members[0]?.user.organizationId ?? '').toString('base64url');
      const invite = rng.chance(0.8)
        ? undefined
        : rng.pick([
            fx.invites.shift() ?? fx.usedInvite,
            fx.usedInvite,
            `${orgA}.${base64url(rng, 60)}`,
            `${orgA}.`,
            `${Buffer.from(randomishUuid(rng)).toString('base64url')}.${base64url(rng, 60)}`,
            `${Buffer.from('../../etc').toString('base64url')}.x`,
            '.',
            'nope.nope',
            'x'.repeat(512),
          ]);
      return {
        email: `fuzz-${index}-${rng.text(6)}@clinic.example`,
        password: PASSWORD,
        ...(invite === undefined ? {} : { inviteCode: invite }),
      };
    }
    case 'POST /api/v1/organizations/invites':
      return rng.chance(0.5) ? {} : { email: `invitee-${index}-${rng.text(6)}@clinic.example` };
    case 'POST /api/v1/auth/signin':
      return rng.chance(0.8)
        ? { email: victim?.email ?? 'nobody@clinic.example', password: PASSWORD }
        : { email: `nobody-${index}@clinic.example`, password: PASSWORD };
    case 'POST /api/v1/forms':
    case 'PUT /api/v1/forms/{id}':
      return { title: rng.pick(['Intake', 'Ünïcödé 😀', 't'.repeat(300)]), fields: randomFields(rng) };
    case 'POST /api/v1/public/forms/{id}/responses': {
      const id = formId ?? fx.formPublic;
      const fresh = await fx.nonce(id);
      const nonce = rng.pick([
        fresh,
        fresh,
        fresh,
        fresh,
        fresh,
        nearly(rng, fresh),
        await fx.nonce(id === fx.formEdit ? fx.formPublic : fx.formEdit),
        fx.spentNonce,
      ]);
      return { nonce, answers: id === fx.formPublic ? validAnswers(rng) : {} };
    }
    default:
      return route.bodySchema === undefined ? { fuzz: rng.text(8) } : fromSchema(route.bodySchema, rng);
  }
}
