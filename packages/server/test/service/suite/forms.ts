/**
 * The suite's cases of forms: invites into an organization, forms kept inside it, the fenced
 * edit lock, public submission with single-use nonces, the PDF of a response, and answers the
 * service cannot store.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';

import { Client, freshEmail } from '../../helpers/client.js';
import { PASSWORD, type SuiteContext } from './context.js';

export function formCases(suite: SuiteContext): void {
  it('keeps forms inside their organization, with a fenced edit lock', async () => {
    const owner = await suite.member();
    const colleague = new Client(suite.base);
    const invite = await owner.post('/api/v1/organizations/invites');
    assert.equal(invite.status, 201, invite.text);
    assert.ok(Date.parse(invite.json.data.expiresAt) > Date.now() + 6 * 24 * 3600 * 1000);
    const code = invite.json.data.inviteCode;
    suite.remember(code);
    const colleagueEmail = freshEmail();
    // A refused sign-up (taken email) does not use the invite up.
    const taken = await colleague.post('/api/v1/auth/signup', {
      email: owner.user?.email,
      password: PASSWORD,
      inviteCode: code,
    });
    assert.equal(taken.status, 409);
    assert.equal(taken.json.error.code, 'CONFLICT');
    const joined = await colleague.signUp(colleagueEmail, PASSWORD, code);
    assert.equal(joined.json.data.user.organizationId, owner.user?.organizationId);
    const reused = await new Client(suite.base).post('/api/v1/auth/signup', {
      email: freshEmail(),
      password: PASSWORD,
      inviteCode: code,
    });
    assert.equal(reused.status, 409);
    assert.equal(reused.json.error.code, 'NONCE_INVALID');
    const bogus = await new Client(suite.base).post('/api/v1/auth/signup', {
      email: freshEmail(),
      password: PASSWORD,
      inviteCode: 'nope.nope',
    });
    assert.equal(bogus.status, 409);
    assert.equal(bogus.json.error.code, 'NONCE_INVALID');
    await colleague.signIn(colleagueEmail);
    const outsider = await suite.member();

    const created = await owner.post('/api/v1/forms', {
      title: 'Patient intake',
      fields: [
        { name: 'fullName', label: 'Full name', type: 'text' },
        { name: 'dob', label: 'Date of birth', type: 'date' },
        { name: 'plan', label: 'Plan', type: 'select', options: ['basic', 'plus'] },
      ],
    });
    assert.equal(created.status, 201, created.text);
    const form = created.json.data.form;
    assert.equal((await colleague.get(`/api/v1/forms/${String(form.id)}`)).status, 200);
    const hidden = await outsider.get(`/api/v1/forms/${String(form.id)}`);
    assert.equal(hidden.status, 404);
    assert.equal(hidden.json.error.code, 'NOT_FOUND');
    assert.equal((await owner.get('/api/v1/forms/00000000-0000-0000-0000-000000000000')).status, 404);
    const badField = await owner.post('/api/v1/forms', {
      title: 'x',
      fields: [{ name: 'a', label: 'A', type: 'weird' }],
    });
    assert.equal(badField.status, 400);

    const lockPath = `/api/v1/forms/${String(form.id)}/lock`;
    const lock = await owner.post(lockPath);
    assert.equal(lock.status, 200, lock.text);
    const { token, fencingToken } = lock.json.data.lock;
    suite.remember(token);
    assert.ok(Number.isSafeInteger(fencingToken) && fencingToken > 0);
    assert.ok(Date.parse(lock.json.data.lock.expiresAt) > Date.now() + 100_000);
    const conflict = await colleague.post(lockPath);
    assert.equal(conflict.status, 409);
    assert.equal(conflict.json.error.code, 'LOCKED');
    assert.ok(Number(conflict.headers.get('retry-after')) >= 1);
    // The same user in another session is another holder too.
    const ownerElsewhere = new Client(suite.base);
    await ownerElsewhere.signIn(String(owner.user?.email));
    assert.equal((await ownerElsewhere.post(lockPath)).status, 409);
    const renewed = await owner.post(lockPath, undefined, { headers: { 'x-lock-token': token } });
    assert.equal(renewed.status, 200);
    assert.equal(renewed.json.data.lock.fencingToken, fencingToken);
    const update = { title: 'Patient intake v2', fields: form.fields };
    const unlocked = await colleague.request('PUT', `/api/v1/forms/${String(form.id)}`, { body: update });
    assert.equal(unlocked.status, 409);
    assert.equal(unlocked.json.error.code, 'LOCKED');
    const written = await owner.request('PUT', `/api/v1/forms/${String(form.id)}`, {
      body: update,
      headers: { 'x-lock-token': token },
    });
    assert.equal(written.status, 200, written.text);
    assert.equal(written.json.data.form.title, 'Patient intake v2');
    const wrongRelease = await colleague.request('DELETE', lockPath, {
      headers: { 'x-lock-token': 'A'.repeat(22) },
    });
    assert.equal(wrongRelease.status, 409);
    const noToken = await owner.request('DELETE', lockPath);
    assert.equal(noToken.status, 400);
    assert.equal(noToken.json.error.code, 'VALIDATION_ERROR');
    assert.equal(
      (await owner.request('DELETE', lockPath, { headers: { 'x-lock-token': token } })).status,
      204,
    );
    // The next holder gets a greater fencing token; the old holder can no longer write.
    const next = await colleague.post(lockPath);
    assert.equal(next.status, 200);
    assert.ok(next.json.data.lock.fencingToken > fencingToken);
    const stale = await owner.request('PUT', `/api/v1/forms/${String(form.id)}`, {
      body: { title: 'stale', fields: form.fields },
      headers: { 'x-lock-token': token },
    });
    assert.equal(stale.status, 409);
    // A stale token while the lock is free gets a new lock.
    assert.equal(
      (
        await colleague.request('DELETE', lockPath, {
          headers: { 'x-lock-token': next.json.data.lock.token },
        })
      ).status,
      204,
    );
    const retaken = await owner.post(lockPath, undefined, { headers: { 'x-lock-token': token } });
    assert.equal(retaken.status, 200);
    assert.notEqual(retaken.json.data.lock.token, token);
    assert.ok(retaken.json.data.lock.fencingToken > next.json.data.lock.fencingToken);

    // Public submission with single-use nonces, then a PDF inside the organization only.
    const publicClient = new Client(suite.base);
    const publicForm = await publicClient.get(`/api/v1/public/forms/${String(form.id)}`);
    assert.equal(publicForm.headers.get('cache-control'), 'no-store', 'a single-use nonce is never cached');
    assert.equal(publicForm.status, 200);
    assert.equal(publicForm.json.data.form.id, form.id);
    const nonce = publicForm.json.data.nonce;
    suite.remember(nonce);
    const answers = { fullName: 'Jane Q. Patient-Secret', dob: '1980-02-29', plan: 'plus' };
    suite.remember(answers.fullName);
    const submitted = await publicClient.post(`/api/v1/public/forms/${String(form.id)}/responses`, {
      nonce,
      answers,
    });
    assert.equal(submitted.status, 201, submitted.text);
    const responseId = submitted.json.data.response.id;
    const replay = await publicClient.post(`/api/v1/public/forms/${String(form.id)}/responses`, {
      nonce,
      answers,
    });
    assert.equal(replay.status, 409);
    assert.equal(replay.json.error.code, 'NONCE_INVALID');
    const missing = await publicClient.post(`/api/v1/public/forms/${String(form.id)}/responses`, {
      answers,
    });
    assert.equal(missing.status, 409);
    assert.equal(missing.json.error.code, 'NONCE_INVALID');
    const otherForm = await owner.post('/api/v1/forms', { title: 'Other', fields: [] });
    const foreignNonce = (
      await publicClient.get(`/api/v1/public/forms/${String(otherForm.json.data.form.id)}`)
    ).json.data.nonce;
    const foreign = await publicClient.post(`/api/v1/public/forms/${String(form.id)}/responses`, {
      nonce: foreignNonce,
      answers,
    });
    assert.equal(foreign.status, 409);
    const badAnswers = await publicClient.post(`/api/v1/public/forms/${String(form.id)}/responses`, {
      nonce: (await publicClient.get(`/api/v1/public/forms/${String(form.id)}`)).json.data.nonce,
      answers: { plan: 'gold' },
    });
    assert.equal(badAnswers.status, 400);
    assert.equal(
      (await publicClient.get('/api/v1/public/forms/00000000-0000-0000-0000-000000000000')).status,
      404,
    );

    const pdf = await colleague.post(`/api/v1/responses/${String(responseId)}/pdf`);
    assert.equal(pdf.status, 200, pdf.text.slice(0, 200));
    assert.equal(pdf.headers.get('content-type'), 'application/pdf');
    assert.ok(pdf.text.startsWith('%PDF-'));
    assert.equal((await outsider.post(`/api/v1/responses/${String(responseId)}/pdf`)).status, 404);
    // While a render of this response is in progress anywhere, another gets 409 LOCKED.
    const held = await suite.running.service.context.gh.locks.tryAcquire(`pdf:${String(responseId)}`, {
      ttl: 10_000,
    });
    assert.ok(held.acquired);
    const busy = await owner.post(`/api/v1/responses/${String(responseId)}/pdf`);
    assert.equal(busy.status, 409);
    assert.equal(busy.json.error.code, 'LOCKED');
    assert.ok(Number(busy.headers.get('retry-after')) >= 1);
    await held.release();
    assert.equal((await owner.post(`/api/v1/responses/${String(responseId)}/pdf`)).status, 200);
  });

  it('refuses unstorable or oversized answers before spending the nonce; field names are only names', async () => {
    const owner = await suite.member();
    const created = await owner.post('/api/v1/forms', {
      title: 'Edge cases',
      fields: [
        { name: 'constructor', label: 'A field named like a prototype member', type: 'text' },
        { name: 'notes', label: 'Notes', type: 'textarea' },
      ],
    });
    assert.equal(created.status, 201, created.text);
    const id = String(created.json.data.form.id);
    const visitor = new Client(suite.base);
    const nonce = (await visitor.get(`/api/v1/public/forms/${id}`)).json.data.nonce;
    // JSON escapes, as a client would send them (a lone surrogate in a JS string would be
    // replaced by U+FFFD on the way out).
    for (const notes of ['NUL \\u0000 inside', 'half a pair \\ud800 here']) {
      const refused = await visitor.request('POST', `/api/v1/public/forms/${id}/responses`, {
        rawBody: `{"nonce": ${JSON.stringify(nonce)}, "answers": {"notes": "${notes}"}}`,
      });
      assert.equal(refused.status, 400, refused.text);
      assert.equal(refused.json.error.code, 'VALIDATION_ERROR');
    }
    const tooLong = await visitor.post(`/api/v1/public/forms/${id}/responses`, {
      nonce,
      answers: { notes: 'x'.repeat(10_001) },
    });
    assert.equal(tooLong.status, 400);
    // Unanswered `constructor` is just unanswered; the nonce is still good after the refusals.
    const accepted = await visitor.post(`/api/v1/public/forms/${id}/responses`, {
      nonce,
      answers: { notes: 'fine' },
    });
    assert.equal(accepted.status, 201, accepted.text);
  });
}
