/**
 * The client's IP address. Without trusted proxies it is the socket's peer: `X-Forwarded-For`
 * is whatever the client wrote and is ignored. With `trustProxy` = N proxies in front of the
 * service, it is the address N hops back: the Nth entry from the right of `X-Forwarded-For` plus
 * the peer (the leftmost when there are fewer), never an entry the client chose beyond them.
 */
import { isIP } from 'node:net';

export function clientIp(
  socketAddress: string | undefined,
  forwardedFor: string | undefined,
  trustProxy: number,
): string {
  const peer = normalize(socketAddress ?? '') ?? 'unknown';
  if (trustProxy <= 0 || !forwardedFor) return peer;
  const chain = [
    ...forwardedFor
      .split(',')
      .map((entry) => entry.trim())
      .filter((entry) => entry !== ''),
    peer,
  ];
  const index = Math.max(0, chain.length - 1 - trustProxy);
  return normalize(chain[index] ?? '') ?? peer;
}

/**
 * The address without a port (`1.2.3.4:5678`, `[2001:db8::1]:443`, as some proxies write them)
 * or an IPv4-mapped IPv6 prefix; null when it is not an IP address.
 */
function normalize(address: string): string | null {
  let plain = address;
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(plain);
  if (bracketed?.[1]) plain = bracketed[1];
  else if (/^[\d.]+:\d+$/.test(plain)) plain = plain.slice(0, plain.lastIndexOf(':'));
  if (plain.startsWith('::ffff:') && isIP(plain.slice(7)) === 4) plain = plain.slice(7);
  return isIP(plain) === 0 ? null : plain;
}
