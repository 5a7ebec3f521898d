/**
 * Route requirements are checked when a route is defined: a mistake throws a
 * RouteDefinitionError naming the route and what is wrong, at start-up, in both adapters, and
 * never becomes a 500 per request or an unguarded route.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';

import express from 'express';
import Fastify, { type FastifyInstance } from 'fastify';

import { gatehouseExpress } from '../../src/adapters/express.js';
import { gatehouseFastify, type FastifyRouteGuard } from '../../src/adapters/fastify.js';
import { RouteDefinitionError } from '../../src/errors.js';
import { createGatehouse, type Gatehouse } from '../../src/gatehouse.js';

/** The error a definition throws: a RouteDefinitionError whose message matches `pattern`. */
function definitionError(pattern: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof RouteDefinitionError, String(error));
    assert.equal(error.code, 'GH_ERR_CONFIG_INVALID');
    assert.match(error.message, pattern);
    return true;
  };
}

describe('route definitions', () => {
  let gh: Gatehouse;
  before(async () => {
    gh = await createGatehouse({
      redis: 'memory',
      secretKeys: [randomBytes(32)],
      origin: 'https://app.example',
      rateLimits: { api: '100/1m+10', pdf: '10/1m+2' },
    });
  });
  after(async () => {
    await gh.close();
  });

  describe('Fastify: config.gatehouse, checked as each route is added', () => {
    let app: FastifyInstance;
    before(async () => {
      app = Fastify();
      await app.register(gatehouseFastify, gh);
    });
    after(async () => {
      await app.close();
    });

    const refused: [string, string, FastifyRouteGuard | Record<string, unknown>, RegExp][] = [
      [
        'a rate-limit policy that was never configured',
        'POST',
        { rateLimit: { auth: 'ip' } },
        /^route POST \/r\d+: rateLimit names the policy "auth", which is not configured \(configured: api, pdf\)/,
      ],
      ['one unknown policy in a list', 'GET', { rateLimit: ['api', 'apii'] }, /the policy "apii"/],
      [
        'a charge that is neither user nor ip',
        'GET',
        { rateLimit: { api: 'session' } },
        /charge 'user' or 'ip'/,
      ],
      ['an empty policy list', 'GET', { rateLimit: [] }, /names no policy/],
      ['a misspelt requirement', 'GET', { sesion: 'required' }, /unknown requirement "sesion"/],
      [
        'a session requirement of another value',
        'GET',
        { session: 'always' },
        /session must be 'required' or 'optional'/,
      ],
      ['an empty role list', 'GET', { roles: [] }, /roles must list at least one role/],
      ['a role that is not a string', 'GET', { roles: ['admin', 7] }, /non-empty strings/],
      ['csrf that is not a boolean', 'POST', { csrf: 'no' }, /csrf must be true or false/],
      [
        'authenticate: false with a session required',
        'GET',
        { authenticate: false, session: 'required' },
        /cannot require a session/,
      ],
      [
        'a lock without a resource function',
        'POST',
        { lock: { resource: 'pdf:1' } },
        /lock resource must be a function/,
      ],
      [
        'a lock ttl that is not a duration',
        'POST',
        { lock: { resource: () => 'pdf', ttl: '5 minutes' } },
        /lock ttl must be/,
      ],
      ['a nonce without a purpose function', 'POST', { nonce: { purpose: 'form' } }, /nonce needs purpose/],
      [
        'a nonce whose source is not a function',
        'POST',
        { nonce: { purpose: () => 'form', from: 'body' } },
        /\(from\) must be a function/,
      ],
    ];
    let route = 0;
    for (const [what, method, requirements, pattern] of refused) {
      it(`refuses ${what} where the route is defined`, () => {
        route += 1;
        assert.throws(() => {
          app.route({
            method,
            url: `/r${String(route)}`,
            config: { gatehouse: requirements },
            handler: () => ({}),
          });
        }, definitionError(pattern));
      });
    }

    it('fails start-up when the route is defined inside a plugin', async () => {
      const other = Fastify();
      try {
        await other.register(gatehouseFastify, gh);
        // A plugin as most apps write one: a promise, here one whose route definition throws.
        const registered = other.register(
          (scope) =>
            new Promise<void>((resolve) => {
              scope.get('/inner', { config: { gatehouse: { rateLimit: 'auth' } } }, () => ({}));
              resolve();
            }),
        );
        await assert.rejects(
          Promise.resolve(registered).then(() => other.ready()),
          definitionError(/route GET \/inner: rateLimit names the policy "auth"/),
        );
      } finally {
        await other.close();
      }
    });

    it('refuses a CSRF-checked unsafe route when the guard has no Csrf, and accepts it with csrf: false', async () => {
      const other = Fastify();
      await other.register(gatehouseFastify, { sessions: gh.sessions, rateLimits: gh.rateLimits });
      try {
        assert.throws(
          () => other.post('/notes', () => ({})),
          definitionError(/checks CSRF but the guard has no Csrf/),
        );
        other.post('/bearer-only', { config: { gatehouse: { csrf: false } } }, () => ({}));
        other.get('/read', () => ({}));
        await other.ready();
      } finally {
        await other.close();
      }
    });

    it('accepts every documented requirement', async () => {
      const other = Fastify();
      await other.register(gatehouseFastify, gh);
      other.post(
        '/ok',
        {
          config: {
            gatehouse: {
              session: 'required',
              roles: ['admin'],
              csrf: true,
              rateLimit: { api: 'user', pdf: 'ip' },
              nonce: { purpose: () => 'form:1', from: () => 'x' },
              lock: { resource: () => 'pdf:1', ttl: '1m', wait: 0, maxHold: '5m' },
            },
          },
        },
        () => ({}),
      );
      other.get('/probe', { config: { gatehouse: { authenticate: false } } }, () => ({}));
      await other.ready();
      await other.close();
    });
  });

  describe('Express: protect(), lock() and nonce() check what they are given', () => {
    it('refuses an unconfigured policy in protect(), naming it', () => {
      const web = gatehouseExpress(gh);
      assert.throws(
        () => web.protect({ rateLimit: { auth: 'ip' } }),
        definitionError(
          /^protect\(\): rateLimit names the policy "auth", which is not configured \(configured: api, pdf\)/,
        ),
      );
    });

    it('refuses misspelt and malformed requirements', () => {
      const web = gatehouseExpress(gh);
      assert.throws(
        () => web.protect({ sesion: 'required' } as never),
        definitionError(/unknown requirement "sesion"/),
      );
      assert.throws(() => web.protect({ session: 'always' } as never), definitionError(/session must be/));
      assert.throws(() => web.protect({ roles: [] }), definitionError(/at least one role/));
      assert.throws(
        () => web.lock(() => 'pdf', { ttl: 'soon' }),
        definitionError(/^lock\(\): lock ttl must be/),
      );
      assert.throws(() => web.lock('pdf' as never), definitionError(/lock resource must be a function/));
      assert.throws(
        () => web.nonce(() => 'form', 'nonce' as never),
        definitionError(/\(from\) must be a function/),
      );
      assert.throws(
        () => web.nonce('form' as never),
        definitionError(/^nonce\(\): the nonce purpose must be a function/),
      );
    });

    it('refuses nonces and locks the guard cannot serve', () => {
      const web = gatehouseExpress({ sessions: gh.sessions, csrf: gh.csrf });
      assert.throws(() => web.protect({ rateLimit: 'api' }), definitionError(/need a RateLimits instance/));
      assert.throws(() => web.lock(() => 'pdf'), definitionError(/need a Locks instance/));
      assert.throws(() => web.nonce(() => 'form'), definitionError(/need a Nonces instance/));
    });

    it('accepts every documented requirement', () => {
      const web = gatehouseExpress(gh);
      const app = express();
      app.post(
        '/ok',
        web.protect({
          session: 'required',
          roles: ['admin'],
          csrf: true,
          rateLimit: { api: 'user', pdf: 'ip' },
        }),
        web.lock(() => 'pdf:1', { ttl: '1m', wait: '1s', maxHold: '5m' }),
        web.nonce(() => 'form:1'),
        (_req, res) => {
          res.end();
        },
      );
    });
  });
});
