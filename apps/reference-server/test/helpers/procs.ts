import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

/** A `geofence` service running as its own process (from the TypeScript sources, via tsx). */
export interface Service {
  url: string;
  child: ChildProcess;
  /** Everything the service wrote to stdout and stderr so far (for assertion messages). */
  output(): string;
  /** Sends `signal` and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts `geofence <role>` with `env` and resolves when it logs that it listens. */
export function spawnService(
  role: string,
  env: Record<string, string>,
  args: string[] = [],
): Promise<Service> {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, role, ...args], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let output = '';
  child.stderr?.on('data', (d) => {
    stderr += String(d);
    output += String(d);
  });
  const kill = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill(signal);
    await exited;
  };
  return new Promise((resolve, reject) => {
    // Generous: a clustered service starts a primary and its workers, on a shared 2-core machine.
    const timer = setTimeout(() => reject(new Error(`${role} did not start: ${stderr}`)), 90_000);
    const rl = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    rl.on('line', (line) => {
      output += `${line}\n`;
      try {
        const j = JSON.parse(line) as { msg?: string; url?: string };
        if (j.msg?.endsWith('listening') && j.url) {
          clearTimeout(timer);
          resolve({ url: j.url, child, kill, output: () => output });
        }
      } catch {
        // not a log line
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${role} exited with ${code}: ${stderr}`));
    });
  });
}

/**
 * The cluster workers of service `pid`: its children that run the geofence CLI (tsx also starts an
 * esbuild service child in a service run from the sources, which is not a worker).
 */
export function workerPids(pid: number): number[] {
  return childPids(pid).filter((p) => {
    try {
      return /\bcli\.[jt]s\b/.test(readFileSync(`/proc/${p}/cmdline`, 'utf8'));
    } catch {
      return false; // exited meanwhile
    }
  });
}

/** Pids of the direct child processes of `pid`, from /proc. */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      // Fields after the parenthesised command name: state, ppid, ...
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(d));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const addr = srv.address();
  await new Promise((r) => srv.close(r));
  return typeof addr === 'object' && addr ? addr.port : 0;
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = new Socket();
    s.setTimeout(500);
    s.once('error', () => resolve(false));
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
    s.connect(port, '127.0.0.1', () => s.write('PING\r\n'));
    s.once('data', (d) => {
      s.destroy();
      resolve(String(d).startsWith('+PONG'));
    });
  });
}

/** A running throwaway redis-server (see {@link startRedis}). */
export interface TestRedis {
  url: string;
  port: number;
  /** SIGTERM (after SIGCONT, in case it is frozen) and wait for the exit. */
  stop(): Promise<void>;
  /** `kill -9`: the server dies without closing its connections cleanly. */
  kill9(): Promise<void>;
  /** SIGSTOP (`frozen = true`) or SIGCONT: connections stay open, nothing is answered meanwhile. */
  freeze(frozen: boolean): void;
}

/** A throwaway redis-server on a free loopback port (or `fixedPort`), no persistence. */
export async function startRedis(fixedPort?: number): Promise<TestRedis> {
  const port = fixedPort ?? (await freePort());
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    {
      stdio: 'ignore',
    },
  );
  for (let i = 0; i < 100; i++) {
    if (await ping(port)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const end = async (signal: NodeJS.Signals) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    if (signal !== 'SIGKILL') child.kill('SIGCONT');
    child.kill(signal);
    await exited;
  };
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop: () => end('SIGTERM'),
    kill9: () => end('SIGKILL'),
    freeze: (frozen) => {
      child.kill(frozen ? 'SIGSTOP' : 'SIGCONT');
    },
  };
}
