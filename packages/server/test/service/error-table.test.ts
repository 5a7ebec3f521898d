/**
 * One status per error code everywhere: the library's table (HTTP_ERROR_STATUS, which the
 * envelope and the service answer with), the error table of docs/http-api.md, and the fuzz
 * test's own copy (./fuzz/oracle-catalogue.ts, kept apart on purpose to judge answers by the
 * contract) agree.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import { HTTP_ERROR_STATUS, refusal, type HttpErrorCode } from 'gatehouse/fastify';

import { ERROR_CATALOGUE as FUZZ_ORACLE } from './fuzz/oracle-catalogue.js';

/** The rows of the documented error table: `| `CODE` | status | when |`. */
function documentedStatuses(): Map<string, number> {
  const doc = readFileSync(new URL('../../../../docs/http-api.md', import.meta.url), 'utf8');
  const rows = [...doc.matchAll(/^\| `([A-Z_]+)` +\| (\d{3}) +\|/gm)];
  return new Map(rows.map((row) => [row[1] ?? '', Number(row[2])]));
}

describe('error codes and their statuses', () => {
  it('docs/http-api.md documents every code of the library with its status, and no other', () => {
    assert.deepEqual(
      Object.fromEntries([...documentedStatuses()].sort()),
      Object.fromEntries(Object.entries(HTTP_ERROR_STATUS).sort()),
    );
  });

  it('the fuzz oracle has every code a client may see (no 500) with the same status', () => {
    const expected = Object.entries(HTTP_ERROR_STATUS).filter(([code]) => code !== 'INTERNAL_ERROR');
    assert.deepEqual(Object.entries(FUZZ_ORACLE).sort(), expected.sort());
  });

  it('every refusal the envelope builds carries its code and the status of the table', () => {
    for (const [code, status] of Object.entries(HTTP_ERROR_STATUS)) {
      const refused = refusal(code as HttpErrorCode, 'message');
      assert.equal(refused.status, status, code);
      assert.equal(refused.body.error.code, code);
    }
  });
});
