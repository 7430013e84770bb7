/**
 * Test helper: a throwaway redis-server on a free loopback port (no persistence).
 * Reusable by other packages' tests: `const redis = await startRedis(); ... await redis.stop();`
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer, Socket } from 'node:net';

/** A running redis-server. */
export interface RunningRedis {
  /** Port on 127.0.0.1. */
  port: number;
  /** `redis://127.0.0.1:<port>`. */
  url: string;
  /** Stop the server and wait for it to exit. */
  stop(): Promise<void>;
}

/** A free TCP port on 127.0.0.1 (bound and released; good enough for tests). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

async function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = new Socket();
    let buf = '';
    s.setTimeout(500);
    s.once('error', () => resolve(false));
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
    s.connect(port, '127.0.0.1', () => s.write('PING\r\n'));
    s.on('data', (d) => {
      buf += d.toString();
      if (buf.includes('\r\n')) {
        s.destroy();
        resolve(buf.startsWith('+PONG'));
      }
    });
  });
}

/** Start redis-server (`--save '' --appendonly no`) on a free port and wait until it answers PING. */
export async function startRedis(options: { binary?: string } = {}): Promise<RunningRedis> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const child: ChildProcess = spawn(
      options.binary ?? 'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--protected-mode',
        'yes',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let exited = false;
    let output = '';
    child.stdout?.on('data', (d) => {
      output += d.toString();
    });
    child.stderr?.on('data', (d) => {
      output += d.toString();
    });
    const exitPromise = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.once('exit', () => {
      exited = true;
    });
    const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
    for (let i = 0; i < 100 && !exited; i++) {
      const r = await Promise.race([ping(port), spawnError.then((e) => e)]);
      if (r instanceof Error) throw new Error(`cannot start redis-server: ${r.message}`);
      if (r) {
        return {
          port,
          url: `redis://127.0.0.1:${port}`,
          async stop() {
            if (!exited) {
              child.kill('SIGTERM');
              await exitPromise;
            }
          },
        };
      }
      await new Promise((r2) => setTimeout(r2, 50));
    }
    if (!exited) {
      child.kill('SIGKILL');
      await exitPromise;
    }
    if (!/Address already in use/i.test(output))
      throw new Error(`redis-server did not start: ${output.slice(-500)}`);
  }
  throw new Error('redis-server: no free port after 5 attempts');
}
