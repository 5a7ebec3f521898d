/** The service's check of every parsed JSON body, before any route sees it. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { bodyProblem, MAX_BODY_DEPTH } from '../../src/service/json-body.js';

/** `inner` inside `depth` arrays, parsed from JSON text as a request body would be. */
function nested(depth: number, inner: string): unknown {
  return JSON.parse(`${'['.repeat(depth)}${inner}${']'.repeat(depth)}`);
}

describe('bodyProblem', () => {
  it('finds NUL and lone surrogates in strings and keys, and passes valid text', () => {
    assert.equal(bodyProblem({ a: ['ok', { b: 'fine \u00e9 \ud83d\ude00' }] }), null);
    assert.match(String(bodyProblem({ a: ['ok', { b: 'nul \u0000' }] })), /NUL/);
    assert.match(String(bodyProblem({ a: 'half \ud83d' })), /Unicode/);
    assert.match(String(bodyProblem({ a: 'half \ude00' })), /Unicode/);
    assert.match(String(bodyProblem({ ['key \u0000']: 1 })), /NUL/);
    assert.equal(bodyProblem([1, true, null, 2.5]), null);
    assert.equal(bodyProblem('text'), null);
  });

  it(`refuses nesting deeper than ${String(MAX_BODY_DEPTH)} levels, at any depth, without overflowing`, () => {
    assert.equal(bodyProblem(nested(MAX_BODY_DEPTH, '"fine"')), null);
    assert.match(String(bodyProblem(nested(MAX_BODY_DEPTH + 1, '"fine"'))), /nested deeper/);
    assert.match(String(bodyProblem(nested(400_000, '"fine"'))), /nested deeper/);
    assert.match(
      String(bodyProblem(JSON.parse(`${'{"a":'.repeat(1000)}1${'}'.repeat(1000)}`))),
      /nested deeper/,
    );
  });

  it('walks very long arrays', () => {
    const long: unknown[] = Array.from({ length: 300_000 }, () => 'x');
    assert.equal(bodyProblem(long), null);
    long.push('\u0000');
    assert.match(String(bodyProblem(long)), /NUL/);
  });
});
