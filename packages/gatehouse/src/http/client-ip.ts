/**
 * The client's IP address. Without trusted proxies it is the socket's peer: `X-Forwarded-For`
 * is whatever the client wrote and is ignored. Proxies are trusted in one of two ways:
 *
 * - by number (`trustProxy` = N proxies in front of the service): the address N hops back, the
 *   Nth entry from the right of `X-Forwarded-For` plus the peer (the leftmost when there are
 *   fewer), never an entry the client chose beyond them. Right only when every request comes
 *   through exactly those N proxies.
 * - by address (`trustProxy` = a list of addresses and CIDR ranges): `X-Forwarded-For` is
 *   believed only on a connection whose peer is in the list, and the client is its rightmost
 *   entry that is not (the leftmost when all are). A client that reaches the service directly,
 *   past the proxies, is its own peer whatever it writes.
 */
import { BlockList, isIP } from 'node:net';

import { plainAddress } from './ip-address.js';

/** `trustProxy` as the guard and the adapters take it. */
export type TrustProxyOption = number | boolean | readonly string[];

/** The most proxies the number form may name (the gatehouse server's `TRUST_PROXY` range). */
export const MAX_TRUSTED_PROXY_COUNT = 99;

/** Proxies trusted by address: a set of addresses and CIDR ranges, IPv4 and IPv6. */
export class TrustedProxies {
  /** The entries as given, trimmed. */
  readonly entries: readonly string[];
  private readonly list: BlockList;

  private constructor(entries: readonly string[], list: BlockList) {
    this.entries = entries;
    this.list = list;
  }

  /** See parseTrustedProxies. */
  static parse(entries: readonly string[]): TrustedProxiesParse {
    const list = new BlockList();
    const trimmed: string[] = [];
    for (const entry of entries as readonly unknown[]) {
      const text = typeof entry === 'string' ? entry.trim() : '';
      const match = /^([^/\s]+)(?:\/(\d{1,3}))?$/.exec(text);
      const address = match?.[1] ?? '';
      const family = isIP(address);
      const prefix = match?.[2] === undefined ? undefined : Number(match[2]);
      if (!match || family === 0 || (prefix !== undefined && prefix > (family === 4 ? 32 : 128))) {
        return { ok: false, badEntry: typeof entry === 'string' ? entry : String(entry) };
      }
      const type = family === 4 ? 'ipv4' : 'ipv6';
      if (prefix === undefined) list.addAddress(address, type);
      else list.addSubnet(address, prefix, type);
      trimmed.push(text);
    }
    return { ok: true, proxies: new TrustedProxies(trimmed, list) };
  }

  /** Whether `address` (a plain IP address) is one of the proxies; false for anything else. */
  has(address: string): boolean {
    const family = isIP(address);
    return family !== 0 && this.list.check(address, family === 4 ? 'ipv4' : 'ipv6');
  }
}

export type TrustedProxiesParse =
  { readonly ok: true; readonly proxies: TrustedProxies } | { readonly ok: false; readonly badEntry: string };

/**
 * Reads a list of trusted proxies: addresses and CIDR ranges, IPv4 or IPv6 (`10.0.0.0/8`,
 * `127.0.0.1`, `fd00::/8`; whitespace around an entry is ignored). The first entry that is not
 * one is named in `badEntry`, for a configuration error that says what to fix
 * (`TRUST_PROXY=10.0.0.0/8,127.0.0.1`: split on commas first).
 */
export function parseTrustedProxies(entries: readonly string[]): TrustedProxiesParse {
  return TrustedProxies.parse(entries);
}

/**
 * `trustProxy` resolved once: a number of proxies, or the proxies by address. A bad value is a
 * TypeError that says what is wrong (naming a bad entry of a list).
 */
export function resolveTrustProxy(option: TrustProxyOption | undefined): number | TrustedProxies {
  if (Array.isArray(option)) {
    const parsed = TrustedProxies.parse(option);
    if (!parsed.ok) {
      throw new TypeError(
        `trustProxy: ${JSON.stringify(parsed.badEntry)} is not an IP address or CIDR range (e.g. 10.0.0.0/8, 127.0.0.1, fd00::/8)`,
      );
    }
    return parsed.proxies;
  }
  const count = option === true ? 1 : option === false || option === undefined ? 0 : option;
  if (
    typeof count !== 'number' ||
    !Number.isSafeInteger(count) ||
    count < 0 ||
    count > MAX_TRUSTED_PROXY_COUNT
  ) {
    throw new TypeError(
      `trustProxy must be true, false, a number of proxies from 0 to ${String(MAX_TRUSTED_PROXY_COUNT)}, or a list of proxy addresses and CIDR ranges`,
    );
  }
  return count;
}

export function clientIp(
  socketAddress: string | undefined,
  forwardedFor: string | undefined,
  trust: number | TrustedProxies,
): string {
  const peer = plainAddress(socketAddress ?? '') ?? 'unknown';
  if (typeof trust !== 'number') return clientBehindListedProxies(peer, forwardedFor, trust);
  if (trust <= 0 || !forwardedFor) return peer;
  const chain = [
    ...forwardedFor
      .split(',')
      .map((entry) => entry.trim())
      .filter((entry) => entry !== ''),
    peer,
  ];
  const index = Math.max(0, chain.length - 1 - trust);
  return plainAddress(chain[index] ?? '') ?? peer;
}

/**
 * From the right of `X-Forwarded-For`, past the listed proxies, to the first address that is not
 * one. An entry that is not an IP address ends the walk at the last address a listed proxy
 * stood for: nobody trusted wrote it, and a client must not pick its own subject with it.
 */
function clientBehindListedProxies(
  peer: string,
  forwardedFor: string | undefined,
  proxies: TrustedProxies,
): string {
  if (!forwardedFor || !proxies.has(peer)) return peer;
  const entries = forwardedFor.split(',');
  let client = peer;
  for (let i = entries.length - 1; i >= 0; i--) {
    const entry = (entries[i] ?? '').trim();
    if (entry === '') continue;
    const address = plainAddress(entry);
    if (address === null) return client;
    client = address;
    if (!proxies.has(address)) return address;
  }
  return client;
}
