/** Redis replies (RESP2, as the audit connections ask for them) as text, lists and maps. */

export type Reply = unknown;

/** Text of a bulk/simple string reply (or a number). */
export function asText(reply: Reply): string {
  if (typeof reply === 'string') return reply;
  if (Buffer.isBuffer(reply)) return reply.toString('utf8');
  if (typeof reply === 'number' || typeof reply === 'bigint') return String(reply);
  return '';
}

export function asList(reply: Reply): Reply[] {
  return Array.isArray(reply) ? (reply as Reply[]) : [];
}

/** A flat `[field, value, field, value]` reply (RESP2 maps) as a Map. */
export function asPairs(reply: Reply): Map<string, Reply> {
  const list = asList(reply);
  const map = new Map<string, Reply>();
  for (let i = 0; i + 1 < list.length; i += 2) map.set(asText(list[i]), list[i + 1]);
  return map;
}

/** INFO text as fields. */
export function parseInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0 && !line.startsWith('#')) fields.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  return fields;
}
