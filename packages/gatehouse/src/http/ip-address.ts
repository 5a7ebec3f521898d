/**
 * IP addresses as the guard reads and counts them: an address as it arrives (socket peer,
 * `X-Forwarded-For` entry) made plain, and the group a per-IP rate limit counts it in.
 */
import { isIP } from 'node:net';

/**
 * The address without a port (`1.2.3.4:5678`, `[2001:db8::1]:443`, as some proxies write them)
 * or an IPv4-mapped IPv6 prefix (`::ffff:1.2.3.4`); null when it is not an IP address.
 */
export function plainAddress(address: string): string | null {
  let plain = address;
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(plain);
  if (bracketed?.[1]) plain = bracketed[1];
  else if (/^[\d.]+:\d+$/.test(plain)) plain = plain.slice(0, plain.lastIndexOf(':'));
  if (plain.startsWith('::ffff:') && isIP(plain.slice(7)) === 4) plain = plain.slice(7);
  return isIP(plain) === 0 ? null : plain;
}

/**
 * The group a per-IP rate limit counts `address` in: an IPv4 address alone; an IPv6 address by
 * its /64, written canonically (RFC 5952: `2001:db8:1:2::/64`), so that every form of the same
 * /64 names one group. One IPv6 subscriber, host or virtual machine usually holds a whole /64 and
 * can pick any address in it: counted per address, it would get 2^64 allowances. IPv4 addresses
 * written as IPv6 (IPv4-mapped `::ffff:1.2.3.4`, and the translation prefix `64:ff9b::/96` by
 * which IPv4 clients reach IPv6-only services) stay per IPv4 address: they stand for different
 * IPv4 clients. Anything that is not an IP address is returned as it is.
 *
 * HttpGuard charges every per-IP policy to `ip:<group>`; use the same for per-IP subjects of
 * your own (`rateLimits.check({ upload: `ip:${ipRateLimitGroup(clientIp)}` })`).
 */
export function ipRateLimitGroup(address: string): string {
  if (!address.includes(':')) return address;
  const groups = ipv6Groups(address);
  if (!groups) return address;
  if (embedsIpv4(groups)) {
    const [high = 0, low = 0] = groups.slice(6);
    return `${String(high >> 8)}.${String(high & 0xff)}.${String(low >> 8)}.${String(low & 0xff)}`;
  }
  // The last four groups are zero, so the longest run of zeros (the one `::` stands for) is the
  // tail, with any zero groups just before it.
  let last = 3;
  while (last >= 0 && groups[last] === 0) last--;
  const head = groups
    .slice(0, last + 1)
    .map((group) => group.toString(16))
    .join(':');
  return `${head}::/64`;
}

/** IPv4-mapped (`::ffff:0:0/96`) or the IPv4/IPv6 translation prefix (`64:ff9b::/96`). */
function embedsIpv4(groups: readonly number[]): boolean {
  const [a, b, c, d, e, f] = groups;
  if (a === 0 && b === 0 && c === 0 && d === 0 && e === 0 && f === 0xffff) return true;
  return a === 0x64 && b === 0xff9b && c === 0 && d === 0 && e === 0 && f === 0;
}

/** The eight 16-bit groups of an IPv6 address (zone dropped), or null when it is not one. */
function ipv6Groups(address: string): number[] | null {
  let text = address;
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  if (isIP(text) !== 6) return null;
  // A trailing dotted IPv4 part is two groups.
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const [a = 0, b = 0, c = 0, d = 0] = tail.split('.').map(Number);
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [before = '', after] = text.split('::');
  const head = before === '' ? [] : before.split(':');
  const rest = after === undefined || after === '' ? [] : after.split(':');
  const zeros = after === undefined ? [] : Array.from({ length: 8 - head.length - rest.length }, () => '0');
  const groups = [...head, ...zeros, ...rest].map((group) => parseInt(group, 16));
  return groups.length === 8 && groups.every((group) => Number.isInteger(group)) ? groups : null;
}
