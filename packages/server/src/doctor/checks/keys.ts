/** Keys under the app's prefix, sampled with SCAN: every one must have a TTL. */
import { pass, type CheckDefinition, type NodeContext } from '../check.js';
import { asList, asText } from '../replies.js';

export const KEYS_WITHOUT_TTL_CHECK: CheckDefinition<NodeContext> = {
  id: 'keys-without-ttl',
  title: 'Every key expires',
  run: async ({ node, keyPrefix, sampleKeys, timeoutMs }) => {
    const keys: string[] = [];
    let cursor = '0';
    let calls = 0;
    const deadline = Date.now() + Math.max(10 * timeoutMs, 5000);
    let complete: boolean;
    do {
      const reply = asList(await node.send(['SCAN', cursor, 'MATCH', `${keyPrefix}:*`, 'COUNT', '500']));
      cursor = asText(reply[0]);
      for (const key of asList(reply[1])) {
        if (keys.length < sampleKeys) keys.push(asText(key));
      }
      calls += 1;
      complete = cursor === '0';
    } while (!complete && keys.length < sampleKeys && calls < 10_000 && Date.now() < deadline);
    const withoutTtl: string[] = [];
    for (let i = 0; i < keys.length; i += 100) {
      const batch = keys.slice(i, i + 100);
      const ttls = await Promise.all(batch.map((key) => node.send(['PTTL', key])));
      ttls.forEach((ttl, index) => {
        if (Number(ttl) === -1) withoutTtl.push(batch[index] ?? '');
      });
    }
    const sample = complete
      ? `${String(keys.length)} key${keys.length === 1 ? '' : 's'} under ${keyPrefix}:`
      : `a sample of ${String(keys.length)} keys under ${keyPrefix}:`;
    if (withoutTtl.length === 0) {
      return pass(keys.length === 0 ? `no keys under ${keyPrefix}:` : `${sample}, every one with a TTL`);
    }
    const named = await Promise.all(
      withoutTtl.slice(0, 5).map(async (key) => {
        const shown = key.replace(/\p{Cc}/gu, '?').slice(0, 120);
        try {
          return `${shown} (${asText(await node.send(['TYPE', key]))})`;
        } catch {
          return shown;
        }
      }),
    );
    return {
      status: 'fail',
      reason: `${String(withoutTtl.length)} of ${sample} have no TTL: ${named.join(', ')}${
        withoutTtl.length > 5 ? ', ...' : ''
      }`,
      fix: `gatehouse sets a TTL on every key it writes: find what wrote these, then delete or PEXPIRE them; do not share the prefix ${keyPrefix} with other applications`,
    };
  },
};
