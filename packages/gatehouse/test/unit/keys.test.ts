import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { KeySpace } from '../../src/store/keys.js';

describe('key space', () => {
  it('builds prefixed, versioned keys, tags and channels', () => {
    const keys = new KeySpace();
    assert.equal(keys.prefix, 'gh');
    assert.equal(keys.key('health', 'probe', 'a1'), 'gh:health.v1:probe:a1');
    assert.equal(keys.tagged('health', 'u42', 'probe'), 'gh:health.v1:{u42}:probe');
    assert.equal(keys.channel('health', 'events'), 'gh:health.v1:events');
    assert.equal(keys.pattern, 'gh:*');
    assert.equal(new KeySpace('tenant-a').key('health', 'x'), 'tenant-a:health.v1:x');
  });

  it('puts keys with the same tag in the same hash slot (one brace pair, first in the key)', () => {
    const keys = new KeySpace();
    const a = keys.tagged('health', 'u1', 'a');
    const b = keys.tagged('health', 'u1', 'b', 'c');
    const tagOf = (key: string) => /\{([^}]*)\}/.exec(key)?.[1];
    assert.equal(tagOf(a), 'u1');
    assert.equal(tagOf(b), 'u1');
    assert.equal((a.match(/\{/g) ?? []).length, 1);
  });

  it('refuses prefixes that would escape the ACL pattern or break tags', () => {
    for (const prefix of ['', 'a:b', 'a{b', 'has space', 'x'.repeat(33), 'é']) {
      assert.throws(() => new KeySpace(prefix), { code: 'GH_ERR_STORE_KEY_INVALID' }, prefix);
    }
  });

  it('refuses parts with braces, whitespace or control characters, and empty or huge parts', () => {
    const keys = new KeySpace();
    for (const part of ['', '{', '}', 'a b', 'a\tb', 'a\u0000b', 'x'.repeat(257)]) {
      assert.throws(
        () => keys.key('health', part),
        { code: 'GH_ERR_STORE_KEY_INVALID' },
        JSON.stringify(part),
      );
      assert.throws(
        () => keys.tagged('health', part),
        { code: 'GH_ERR_STORE_KEY_INVALID' },
        JSON.stringify(part),
      );
    }
  });
});
