/**
 * Real redis-server (and redis-sentinel) processes for tests: each on free loopback ports, in
 * its own temporary directory, killed when the test process exits. Tests never touch a Redis
 * they did not start.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const running = new Set<ChildProcess>();
function killAll(): void {
  for (const child of running) child.kill('SIGKILL');
}
process.on('exit', killAll);
// The test runner cancels a file with a signal: take the servers down with it.
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    killAll();
    process.exit(128 + (signal === 'SIGTERM' ? 15 : 2));
  });
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => {
      resolve(false);
    });
    server.listen(port, '127.0.0.1', () => {
      server.close(() => {
        resolve(true);
      });
    });
  });
}

/**
 * A free loopback port whose port + 10000 (the Cluster bus port) is free as well, so any server
 * may be a Cluster node. Both stay below Linux's ephemeral range (32768 and up), where outgoing
 * connections could take them; random, so parallel test files rarely pick the same one.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 10000 + Math.floor(Math.random() * 12000);
    if ((await canListen(port)) && (await canListen(port + 10000))) return port;
  }
  throw new Error('no free port pair found');
}

/** Returns the first of `commands` found on PATH, or undefined. */
export function findCommand(...commands: string[]): string | undefined {
  return commands.find((command) => spawnSync('sh', ['-c', `command -v ${command}`]).status === 0);
}

export interface RedisServerOptions {
  /** A name for the temp directory and error messages. */
  readonly name: string;
  /** Config lines besides port, bind, dir, logfile and persistence, which are always set. */
  readonly config?: readonly string[];
  /** Run as a Sentinel (redis-sentinel, or redis-server --sentinel when it is not installed). */
  readonly sentinel?: boolean;
  /** Serve TLS only on this port (the plaintext port is closed). */
  readonly tls?: { readonly certFile: string; readonly keyFile: string; readonly caFile: string };
  readonly port?: number;
}

export class RedisServer {
  readonly port: number;
  readonly dir: string;
  private child: ChildProcess | undefined;
  private readonly configFile: string;
  private readonly logFile: string;

  private constructor(
    private readonly options: RedisServerOptions,
    port: number,
  ) {
    this.port = port;
    this.dir = mkdtempSync(join(tmpdir(), `gh-test-${options.name}-`));
    this.configFile = join(this.dir, 'redis.conf');
    this.logFile = join(this.dir, 'redis.log');
    const tls = options.tls;
    const lines = [
      ...(tls
        ? [
            'port 0',
            `tls-port ${String(port)}`,
            `tls-cert-file ${tls.certFile}`,
            `tls-key-file ${tls.keyFile}`,
            `tls-ca-cert-file ${tls.caFile}`,
            'tls-auth-clients yes',
            'tls-protocols "TLSv1.2 TLSv1.3"',
          ]
        : [`port ${String(port)}`]),
      'bind 127.0.0.1',
      `dir ${this.dir}`,
      `logfile ${this.logFile}`,
      ...(options.sentinel
        ? []
        : ['save ""', 'appendonly no', 'enable-debug-command local', 'repl-diskless-sync-delay 0']),
      ...(options.config ?? []),
    ];
    writeFileSync(this.configFile, `${lines.join('\n')}\n`);
  }

  static async start(options: RedisServerOptions): Promise<RedisServer> {
    const server = new RedisServer(options, options.port ?? (await freePort()));
    await server.launch();
    return server;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts the process and waits until it accepts connections. */
  async launch(): Promise<void> {
    if (this.running) return;
    const logOffset = this.logSize();
    const sentinelBinary = this.options.sentinel ? findCommand('redis-sentinel') : undefined;
    const [command, args] = this.options.sentinel
      ? sentinelBinary
        ? [sentinelBinary, [this.configFile]]
        : ['redis-server', [this.configFile, '--sentinel']]
      : ['redis-server', [this.configFile]];
    const child = spawn(command, args, { stdio: 'ignore' });
    this.child = child;
    running.add(child);
    child.once('exit', () => running.delete(child));
    let spawnError: Error | undefined;
    child.once('error', (error) => {
      spawnError = error;
    });
    const readyLine = this.options.sentinel ? /Sentinel ID is/ : /Ready to accept connections/;
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      if (spawnError) throw new Error(`${this.options.name}: cannot run ${command}: ${spawnError.message}`);
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(`${this.options.name} exited at start:\n${this.logTail()}`);
      if (readyLine.test(this.log().slice(logOffset))) return;
      await sleep(25);
    }
    child.kill('SIGKILL');
    throw new Error(`${this.options.name} did not start within 15 s:\n${this.logTail()}`);
  }

  /** SIGKILL: the server vanishes without a goodbye, as in a crash. */
  async kill(): Promise<void> {
    await this.signal('SIGKILL');
  }

  /** Graceful stop (SIGTERM; a paused server is resumed first, or the signal would wait). */
  async stop(): Promise<void> {
    this.resume();
    await this.signal('SIGTERM');
  }

  /** SIGSTOP: the server keeps its sockets but answers nothing, as a stalled server does. */
  pause(): void {
    this.child?.kill('SIGSTOP');
  }

  resume(): void {
    this.child?.kill('SIGCONT');
  }

  /** Starts it again on the same port with the same configuration. */
  async restart(): Promise<void> {
    await this.launch();
  }

  /** Stops the server and removes its directory. */
  async destroy(): Promise<void> {
    this.resume();
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }

  log(): string {
    try {
      return readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  private logSize(): number {
    try {
      return statSync(this.logFile).size;
    } catch {
      return 0;
    }
  }

  private logTail(): string {
    return this.log().split('\n').slice(-15).join('\n');
  }

  private async signal(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const exited = new Promise<void>((resolve) =>
      child.once('exit', () => {
        resolve();
      }),
    );
    child.kill(signal);
    await exited;
  }
}
