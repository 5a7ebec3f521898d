/**
 * How clients reach the server: TLS on the connection (with a handshake of the doctor's own to
 * read what was negotiated), no plaintext port beside it, protected mode and the bind addresses.
 */
import { isIP } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions as TlsConnectionOptions } from 'node:tls';

import { isLoopbackHost } from 'gatehouse';

import { pass, type CheckDefinition, type NodeContext } from '../check.js';
import { CommandFailedError } from '../errors.js';
import type { NodeSession, NodeTarget } from '../node-session.js';

function isLoopbackBind(address: string): boolean {
  const bare = address.replace(/^-/, '');
  return isLoopbackHost(bare);
}

function isWildcardBind(address: string): boolean {
  const bare = address.replace(/^-/, '');
  return bare === '*' || bare === '0.0.0.0' || bare === '::' || bare === '::*';
}

/** Bind addresses; an empty setting means every interface. */
async function bindAddresses(node: NodeSession): Promise<string[]> {
  const bind = (await node.config('bind')) ?? '';
  const addresses = bind.split(/\s+/).filter((item) => item !== '');
  return addresses.length === 0 ? ['*'] : addresses;
}

interface TlsHandshake {
  readonly protocol: string;
  readonly authorized: boolean;
  readonly subject: string;
  readonly validTo: string;
}

/** A TLS handshake of its own to the target (same CA and client certificate), to read what was negotiated. */
function tlsHandshake(target: NodeTarget, timeoutMs: number): Promise<TlsHandshake> {
  const material = target.tls === true || target.tls === undefined || target.tls === false ? {} : target.tls;
  const options: TlsConnectionOptions = {
    host: target.host,
    port: target.port,
    rejectUnauthorized: true,
    ...(isIP(target.host) === 0 ? { servername: target.host } : {}),
    ...(material.ca === undefined ? {} : { ca: material.ca }),
    ...(material.cert === undefined ? {} : { cert: material.cert }),
    ...(material.key === undefined ? {} : { key: material.key }),
  };
  return new Promise((resolve, reject) => {
    const socket = tlsConnect(options);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new CommandFailedError(`TLS handshake did not finish within ${String(timeoutMs)} ms`));
    }, timeoutMs);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      // Typed loosely on purpose: an empty object when the peer sent no certificate.
      const certificate: { subject?: { CN?: unknown }; valid_to?: unknown } = socket.getPeerCertificate();
      const result = {
        protocol: socket.getProtocol() ?? 'unknown',
        authorized: socket.authorized,
        subject: typeof certificate.subject?.CN === 'string' ? certificate.subject.CN : '',
        validTo: typeof certificate.valid_to === 'string' ? certificate.valid_to : 'unknown',
      };
      socket.end();
      resolve(result);
    });
    socket.once('error', (error: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(new CommandFailedError(`TLS handshake failed: ${error.message}`));
    });
  });
}

const TLS_VERSION_ORDER = ['SSLv3', 'TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];

export const TLS_CHECK: CheckDefinition<NodeContext> = {
  id: 'tls',
  title: 'TLS on the connection',
  run: async ({ node, timeoutMs }) => {
    const target = node.target;
    if (target.tls === undefined || target.tls === false) {
      if (isLoopbackHost(target.host)) {
        return {
          status: 'warn',
          reason: `plaintext to loopback ${target.host} (acceptable only when every local user and process is trusted)`,
          fix: 'serve TLS (tls-port with tls-cert-file, tls-key-file, tls-ca-cert-file; port 0) and connect with rediss://',
        };
      }
      return {
        status: 'fail',
        reason: `plaintext to the non-loopback host ${target.host}: passwords, session data and tokens cross the network in clear`,
        fix: 'serve TLS (tls-port with tls-cert-file, tls-key-file, tls-ca-cert-file; port 0) and connect with rediss:// (REDIS_TLS_CA for a private CA)',
      };
    }
    const handshake = await tlsHandshake(target, timeoutMs);
    const trust =
      target.tls === true || target.tls.ca === undefined ? "the system's CAs" : 'the configured CA';
    const client =
      target.tls !== true && target.tls.cert !== undefined ? ', client certificate presented' : '';
    const described = `${handshake.protocol}, certificate${
      handshake.subject === '' ? '' : ` for ${handshake.subject}`
    } verified against ${trust} (valid until ${handshake.validTo})${client}`;
    const rank = TLS_VERSION_ORDER.indexOf(handshake.protocol);
    if (!handshake.authorized) {
      return { status: 'fail', reason: `${described}: but the certificate was not verified` };
    }
    if (rank !== -1 && rank < TLS_VERSION_ORDER.indexOf('TLSv1.2')) {
      return {
        status: 'fail',
        reason: `${handshake.protocol} negotiated: below TLSv1.2`,
        fix: 'set tls-protocols "TLSv1.2 TLSv1.3"',
      };
    }
    let protocols: string | undefined;
    try {
      protocols = await node.config('tls-protocols');
    } catch {
      protocols = undefined; // Optional detail: the negotiated protocol already decides.
    }
    if (protocols !== undefined && /\bTLSv1(\.1)?\b(?!\.[23])/.test(protocols)) {
      return {
        status: 'warn',
        reason: `${described}; but the server also accepts older protocols (tls-protocols "${protocols}")`,
        fix: 'set tls-protocols "TLSv1.2 TLSv1.3"',
      };
    }
    return pass(described);
  },
};

export const PLAINTEXT_PORT_CHECK: CheckDefinition<NodeContext> = {
  id: 'plaintext-port',
  title: 'No plaintext port beside TLS',
  run: async ({ node }) => {
    if (node.target.tls === undefined || node.target.tls === false) {
      return pass('not applicable: the connection itself is plaintext (see tls)');
    }
    const port = (await node.config('port')) ?? '0';
    if (port === '0') return pass('port 0: only the TLS port accepts connections');
    const bind = await bindAddresses(node);
    const exposed = bind.some((address) => !isLoopbackBind(address));
    return {
      status: exposed ? 'fail' : 'warn',
      reason: `plaintext port ${port} is open beside TLS (bind ${bind.join(' ')})`,
      fix: 'set port 0 so that only tls-port accepts connections',
    };
  },
};

export const PROTECTED_MODE_CHECK: CheckDefinition<NodeContext> = {
  id: 'protected-mode',
  title: 'Protected mode',
  run: async ({ node }) => {
    const mode = (await node.config('protected-mode')) ?? 'yes';
    if (mode === 'yes') return pass('protected-mode yes');
    const bind = await bindAddresses(node);
    if (bind.some(isWildcardBind)) {
      return {
        status: 'fail',
        reason: `protected-mode no and bind ${bind.join(' ')}: Redis listens on every interface with nothing held back`,
        fix: 'set protected-mode yes and bind only the addresses clients use',
      };
    }
    return {
      status: 'warn',
      reason: `protected-mode no (bind ${bind.join(' ')})`,
      fix: 'set protected-mode yes',
    };
  },
};

export const BIND_CHECK: CheckDefinition<NodeContext> = {
  id: 'bind',
  title: 'Bind addresses',
  run: async ({ node }) => {
    const bind = await bindAddresses(node);
    if (bind.some(isWildcardBind)) {
      return {
        status: 'warn',
        reason: `bind ${bind.join(' ')}: listens on every interface`,
        fix: 'bind only loopback and the private addresses clients use',
      };
    }
    const loopbackOnly = bind.every(isLoopbackBind);
    return pass(`bind ${bind.join(' ')}${loopbackOnly ? ' (loopback only)' : ''}`);
  },
};
