/**
 * Raw HTTP/1.1 over a socket, for bytes that fetch and node:http would refuse to send: a request
 * on a fresh connection and its first answer, an event stream left open, and both as text for a
 * report.
 */
import net from 'node:net';

/** How long a request waits for its answer before the case reports that none came. */
const ANSWER_TIMEOUT_MS = 15_000;

export type HeaderValue = string | Buffer;
export type Header = readonly [string, HeaderValue];

export interface Wire {
  readonly method: string;
  /** The request-target (path and query) as bytes. */
  readonly target: Buffer;
  readonly version: 'HTTP/1.1' | 'HTTP/1.0';
  readonly headers: readonly Header[];
  readonly body?: Buffer;
  /** How the body is framed: Content-Length (default), chunked, or a Content-Length that lies low. */
  readonly framing?: 'length' | 'chunked' | 'short-length';
  /** Sent as is instead of the above. */
  readonly raw?: Buffer;
}

export interface Answer {
  readonly status: number;
  readonly headers: ReadonlyMap<string, readonly string[]>;
  readonly body: Buffer;
}

export function header(answer: Answer, name: string): string | undefined {
  return answer.headers.get(name)?.[0];
}

function encodeWire(wire: Wire): Buffer {
  if (wire.raw) return wire.raw;
  const parts: Buffer[] = [Buffer.from(`${wire.method} `, 'latin1'), wire.target];
  parts.push(Buffer.from(` ${wire.version}\r\n`, 'latin1'));
  for (const [name, value] of wire.headers) {
    parts.push(
      Buffer.from(`${name}: `, 'latin1'),
      typeof value === 'string' ? Buffer.from(value, 'latin1') : value,
    );
    parts.push(Buffer.from('\r\n'));
  }
  const body = wire.body;
  if (body !== undefined) {
    if (wire.framing === 'chunked') {
      parts.push(Buffer.from('Transfer-Encoding: chunked\r\n\r\n'));
      for (let at = 0; at < body.length; at += 64 * 1024) {
        const chunk = body.subarray(at, at + 64 * 1024);
        parts.push(Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n'));
      }
      parts.push(Buffer.from('0\r\n\r\n'));
    } else {
      const length = wire.framing === 'short-length' ? Math.floor(body.length / 2) : body.length;
      parts.push(Buffer.from(`Content-Length: ${length}\r\n\r\n`), body);
    }
  } else {
    parts.push(Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/** Sends one request on a fresh connection and reads the first answer (or says why there was none). */
export function send(port: number, wire: Wire): Promise<Answer | string> {
  return new Promise((resolve) => {
    let received = Buffer.alloc(0);
    let head: { status: number; headers: Map<string, string[]>; bodyAt: number } | undefined;
    let settled = false;
    const socket = net.connect(port, '127.0.0.1');
    const finish = (result: Answer | string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => {
      finish(`no answer within ${ANSWER_TIMEOUT_MS} ms`);
    }, ANSWER_TIMEOUT_MS);
    const answer = (body: Buffer): Answer => ({
      status: head?.status ?? 0,
      headers: head?.headers ?? new Map(),
      body,
    });
    const parse = (closed: boolean) => {
      if (!head) {
        const end = received.indexOf('\r\n\r\n');
        if (end === -1) {
          if (closed) finish(received.length === 0 ? 'connection closed without an answer' : 'a torn answer');
          return;
        }
        const lines = received.subarray(0, end).toString('latin1').split('\r\n');
        const status = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
        if (!status?.[1]) {
          finish(`not an HTTP answer: ${JSON.stringify(lines[0])}`);
          return;
        }
        const headers = new Map<string, string[]>();
        for (const line of lines.slice(1)) {
          const colon = line.indexOf(':');
          const name = line.slice(0, colon).trim().toLowerCase();
          headers.set(name, [...(headers.get(name) ?? []), line.slice(colon + 1).trim()]);
        }
        head = { status: Number(status[1]), headers, bodyAt: end + 4 };
        if (head.status === 100) {
          received = received.subarray(head.bodyAt);
          head = undefined;
          parse(closed);
          return;
        }
      }
      const body = received.subarray(head.bodyAt);
      const length = head.headers.get('content-length')?.[0];
      const type = head.headers.get('content-type')?.[0] ?? '';
      if (wire.method === 'HEAD' || head.status === 204 || head.status === 304) {
        finish(answer(Buffer.alloc(0)));
      } else if (type.startsWith('text/event-stream')) {
        // A live stream: its first event (or comment) is enough.
        if (body.includes('\n\n') || closed) finish(answer(body));
      } else if (length !== undefined) {
        if (body.length >= Number(length)) finish(answer(body.subarray(0, Number(length))));
        else if (closed) finish(`the answer's body was cut short (${body.length} of ${length} bytes)`);
      } else if (/chunked/i.test(head.headers.get('transfer-encoding')?.[0] ?? '')) {
        const decoded = dechunk(body);
        if (decoded) finish(answer(decoded));
        else if (closed) finish('a chunked answer was cut short');
      } else if (closed) {
        finish(answer(body));
      }
    };
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      parse(false);
    });
    // A server that answers before reading a whole (oversized) body resets the connection: the
    // answer it sent first still counts.
    socket.on('error', () => undefined);
    socket.on('close', () => {
      parse(true);
    });
    socket.on('connect', () => {
      socket.write(encodeWire(wire), () => undefined);
    });
  });
}

/** Opens an event stream and leaves it open once its first event (or comment) has come. */
export function openStream(port: number, wire: Wire): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    let received = '';
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(encodeWire(wire));
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('the event stream did not open'));
    }, ANSWER_TIMEOUT_MS);
    socket.on('error', reject);
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      if (!received.startsWith('HTTP/1.1 200')) reject(new Error(received.slice(0, 200)));
      else if (received.indexOf('\n\n', received.indexOf('\r\n\r\n') + 4) !== -1) {
        clearTimeout(timer);
        resolve(socket);
      }
    });
  });
}

function dechunk(body: Buffer): Buffer | null {
  const out: Buffer[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = body.indexOf('\r\n', at);
    if (lineEnd === -1) return null;
    const size = Number.parseInt(body.subarray(at, lineEnd).toString('latin1'), 16);
    if (Number.isNaN(size)) return null;
    if (size === 0) return Buffer.concat(out);
    if (body.length < lineEnd + 2 + size + 2) return null;
    out.push(body.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
}

export function describeWire(wire: Wire): string {
  const printable = (value: Buffer | string) => {
    const text = typeof value === 'string' ? value : value.toString('latin1');
    const shown = text.length > 160 ? `${text.slice(0, 160)}…(${text.length} chars)` : text;
    return JSON.stringify(shown);
  };
  if (wire.raw) return `raw ${printable(wire.raw)}`;
  const headers = wire.headers.map(([name, value]) => `${name}: ${printable(value)}`).join(', ');
  const body = wire.body === undefined ? '' : ` body(${wire.framing ?? 'length'}) ${printable(wire.body)}`;
  return `${printable(wire.method)} ${printable(wire.target)} ${wire.version} [${headers}]${body}`;
}

export function describeAnswer(answer: Answer): string {
  const headers = [...answer.headers.entries()].map(([name, values]) => `${name}: ${values.join(', ')}`);
  return `${answer.status} [${headers.join('; ')}] ${JSON.stringify(answer.body.toString('utf8').slice(0, 300))}`;
}
