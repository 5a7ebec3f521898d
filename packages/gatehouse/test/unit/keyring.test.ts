import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';

import { KeyRing } from '../../src/crypto/keyring.js';

describe('key ring', () => {
  const oldKey = randomBytes(32);
  const newKey = randomBytes(32);

  it('seals with AES-256-GCM and opens only with the same associated data', () => {
    const ring = new KeyRing([oldKey]);
    const sealed = ring.seal(Buffer.from('patient-free payload'), 'session-a');
    assert.ok(!sealed.includes(Buffer.from('payload')), 'ciphertext, not plaintext');
    assert.equal(ring.open(sealed, 'session-a')?.toString(), 'patient-free payload');
    assert.equal(ring.open(sealed, 'session-b'), null, 'bound to where it is stored');
    const tampered = Buffer.from(sealed);
    tampered[tampered.length - 20] = (tampered[tampered.length - 20] ?? 0) ^ 1;
    assert.equal(ring.open(tampered, 'session-a'), null, 'tampering is detected');
    assert.equal(ring.open(Buffer.from('short'), 'session-a'), null);
    assert.notDeepEqual(
      ring.seal(Buffer.from('x'), 'a'),
      ring.seal(Buffer.from('x'), 'a'),
      'fresh IV each time',
    );
  });

  it('rotates: the newest key seals, older keys still open, a dropped key no longer does', () => {
    const before = new KeyRing([oldKey]);
    const sealedBefore = before.seal(Buffer.from('v1'), 'aad');
    const rotated = new KeyRing([newKey, oldKey]);
    assert.equal(rotated.open(sealedBefore, 'aad')?.toString(), 'v1');
    const sealedAfter = rotated.seal(Buffer.from('v2'), 'aad');
    assert.equal(
      new KeyRing([newKey]).open(sealedAfter, 'aad')?.toString(),
      'v2',
      'sealed with the newest key',
    );
    assert.equal(new KeyRing([newKey]).open(sealedBefore, 'aad'), null);
  });

  it('keeps identifier pseudonyms stable when a key is prepended (they use the oldest key)', () => {
    const before = new KeyRing([oldKey]);
    const after = new KeyRing([newKey, oldKey]);
    assert.equal(after.identifier('user', 'u-1'), before.identifier('user', 'u-1'));
    assert.notEqual(before.identifier('user', 'u-1'), before.identifier('user', 'u-2'));
    assert.notEqual(before.identifier('user', 'u-1'), before.identifier('ip', 'u-1'), 'kinds are separated');
    assert.match(before.identifier('user', 'u-1'), /^[A-Za-z0-9_-]{16}$/);
  });

  it('derives application keys per purpose, newest first, stable across instances', () => {
    const ring = new KeyRing([newKey, oldKey]);
    const keys = ring.derivedKeys('app:signing v1');
    assert.equal(keys.length, 2);
    assert.ok(keys.every((key) => key.length === 32));
    assert.deepEqual(new KeyRing([newKey, oldKey]).derivedKeys('app:signing v1'), keys);
    assert.deepEqual(new KeyRing([oldKey]).derivedKeys('app:signing v1')[0], keys[1]);
    assert.notDeepEqual(ring.derivedKeys('app:other')[0], keys[0]);
    assert.ok(!keys.some((key) => key.equals(newKey) || key.equals(oldKey)), 'never the secret itself');
    assert.throws(() => ring.derivedKeys('mac v1'), TypeError, 'gatehouse purposes are refused');
    assert.throws(() => ring.derivedKeys('app:'), TypeError);
  });

  it('refuses an empty ring and short keys', () => {
    assert.throws(() => new KeyRing([]), TypeError);
    assert.throws(() => new KeyRing([randomBytes(16)]), TypeError);
  });
});
