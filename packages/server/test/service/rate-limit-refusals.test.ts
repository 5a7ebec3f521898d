/**
 * Rate-limit refusals counted per policy, subject and clock minute (RateLimitRefusals), on an
 * injected clock: one row per minute with the count, written when the minute is over (by the next
 * refusal or by the timer) or on close, and a bounded number of subjects per minute with the rest
 * folded into one row per policy. The service's own flood is tested in audit-trail.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { waitFor } from '../../../gatehouse/test/harness/topologies.js';
import type { AuditEvent } from '../../src/service/audit.js';
import { RateLimitRefusals, refusingPolicy } from '../../src/service/rate-limit-refusals.js';

/** 2023-11-14T22:13:00.000Z: a minute's first millisecond. */
const MINUTE = 1_700_000_000_000 - (1_700_000_000_000 % 60_000);

function recorder(): { rows: AuditEvent[]; record(event: AuditEvent): void } {
  const rows: AuditEvent[] = [];
  return {
    rows,
    record: (event) => {
      rows.push(event);
    },
  };
}

function byUser(userId: string, policy = 'api', requestId = 'r'): Parameters<RateLimitRefusals['count']>[0] {
  return { policy, userId, ipHash: null, requestId };
}

function byIp(ipHash: string, policy = 'auth', requestId = 'r'): Parameters<RateLimitRefusals['count']>[0] {
  return { policy, userId: null, ipHash, requestId };
}

describe('rate-limit refusals in the audit log', () => {
  it('writes one row per policy, subject and minute, with the count, once the minute is over', () => {
    const audit = recorder();
    let now = MINUTE + 1000;
    const refusals = new RateLimitRefusals({ audit, nowMs: () => now });
    for (let i = 0; i < 500; i += 1) refusals.count(byIp('ip-a', 'auth', `first-${String(i)}`));
    for (let i = 0; i < 7; i += 1) refusals.count(byUser('u1', 'api'));
    refusals.count(byUser('u1', 'pdf'));
    refusals.count(byIp('ip-b'));
    assert.equal(audit.rows.length, 0, 'nothing while the minute lasts');

    now = MINUTE + 60_000 + 5; // the next minute's first refusal writes the last minute
    refusals.count(byIp('ip-a'));
    assert.deepEqual(audit.rows, [
      {
        type: 'rate-limit.refused',
        outcome: 'failure',
        userId: null,
        requestId: 'first-0',
        details: { policy: 'auth', subject: 'ip', ipHash: 'ip-a', refusals: 500, minuteStartMs: MINUTE },
      },
      {
        type: 'rate-limit.refused',
        outcome: 'failure',
        userId: 'u1',
        requestId: 'r',
        details: { policy: 'api', subject: 'user', refusals: 7, minuteStartMs: MINUTE },
      },
      {
        type: 'rate-limit.refused',
        outcome: 'failure',
        userId: 'u1',
        requestId: 'r',
        details: { policy: 'pdf', subject: 'user', refusals: 1, minuteStartMs: MINUTE },
      },
      {
        type: 'rate-limit.refused',
        outcome: 'failure',
        userId: null,
        requestId: 'r',
        details: { policy: 'auth', subject: 'ip', ipHash: 'ip-b', refusals: 1, minuteStartMs: MINUTE },
      },
    ]);
    refusals.close();
    assert.equal(audit.rows.length, 5, 'close writes the minute under way');
    assert.deepEqual(audit.rows[4]?.details, {
      policy: 'auth',
      subject: 'ip',
      ipHash: 'ip-a',
      refusals: 1,
      minuteStartMs: MINUTE + 60_000,
    });
    refusals.close();
    assert.equal(audit.rows.length, 5, 'and writes nothing twice');
  });

  it('writes a minute by its timer when no later refusal comes', async () => {
    const audit = recorder();
    // The clock stands 100 ms before the minute's end, and runs at the real pace.
    const offset = MINUTE + 59_900 - Date.now();
    const refusals = new RateLimitRefusals({ audit, nowMs: () => Date.now() + offset });
    try {
      refusals.count(byUser('u1'));
      refusals.count(byUser('u1'));
      assert.equal(audit.rows.length, 0);
      await waitFor('the minute written by the timer', () => audit.rows.length === 1, 5000);
      assert.deepEqual(audit.rows[0]?.details, {
        policy: 'api',
        subject: 'user',
        refusals: 2,
        minuteStartMs: MINUTE,
      });
    } finally {
      refusals.close();
    }
    assert.equal(audit.rows.length, 1);
  });

  it('counts a bounded number of subjects per minute and folds the rest into one row per policy', () => {
    const audit = recorder();
    const now = MINUTE;
    const refusals = new RateLimitRefusals({ audit, nowMs: () => now, maxSubjectsPerMinute: 2 });
    refusals.count(byIp('ip-1'));
    refusals.count(byIp('ip-2'));
    refusals.count(byIp('ip-1')); // a subject already counted keeps its own row
    for (let i = 3; i <= 1002; i += 1) refusals.count(byIp(`ip-${String(i)}`, 'auth', `over-${String(i)}`));
    refusals.count(byUser('u9', 'api', 'user-over'));
    refusals.close();
    assert.deepEqual(
      audit.rows.map((row) => ({ userId: row.userId, requestId: row.requestId, ...row.details })),
      [
        {
          userId: null,
          requestId: 'r',
          policy: 'auth',
          subject: 'ip',
          ipHash: 'ip-1',
          refusals: 2,
          minuteStartMs: MINUTE,
        },
        {
          userId: null,
          requestId: 'r',
          policy: 'auth',
          subject: 'ip',
          ipHash: 'ip-2',
          refusals: 1,
          minuteStartMs: MINUTE,
        },
        {
          userId: null,
          requestId: 'over-3',
          policy: 'auth',
          subject: 'others',
          refusals: 1000,
          minuteStartMs: MINUTE,
        },
        {
          userId: null,
          requestId: 'user-over',
          policy: 'api',
          subject: 'others',
          refusals: 1,
          minuteStartMs: MINUTE,
        },
      ],
    );
    assert.throws(() => new RateLimitRefusals({ audit, maxSubjectsPerMinute: -1 }), RangeError);
  });

  it("reads the refusing policy from the answer's RateLimit header", () => {
    assert.equal(refusingPolicy('"auth";r=0;t=12'), 'auth');
    assert.equal(refusingPolicy(['"pdf";r=0;t=3', '"api";r=5;t=1']), 'pdf');
    assert.equal(refusingPolicy('"pdf";r=0'), 'pdf');
    assert.equal(refusingPolicy(undefined), 'unknown');
    assert.equal(refusingPolicy(42), 'unknown');
    assert.equal(refusingPolicy('auth;r=0'), 'unknown');
    assert.equal(refusingPolicy('"api";r=95;t=3'), 'unknown', 'a policy with room did not refuse');
    assert.equal(refusingPolicy('"api";r=01;t=3'), 'unknown');
  });
});
