/**
 * A throwaway PostgreSQL cluster per test file: `initdb` + `pg_ctl` on a free loopback port in a temp
 * directory, torn down after. The server refuses to run as root, so as root the binaries run as the
 * `postgres` user (`runuser -u postgres --`) and the directory is handed to it.
 */
import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './procs.js';

const run = promisify(execFile);

/** Where Debian's `postgresql` package puts the server binaries (the newest version installed). */
function binDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (!versions[0])
    throw new Error('PostgreSQL server binaries not found (scripts/bootstrap.sh installs postgresql)');
  return join(root, versions[0], 'bin');
}

/** A running throwaway cluster. */
export interface TestPostgres {
  /** `postgres://postgres@127.0.0.1:<port>/postgres` (trust authentication on loopback). */
  url: string;
  port: number;
  /** Directory of the server's binaries (`pg_dump`, `pg_restore`, …). */
  bin: string;
  /** `pg_ctl stop -m fast`: the server goes away (connections are closed), the data stays. */
  stop(): Promise<void>;
  /** Starts it again on the same port and data. */
  start(): Promise<void>;
  /** SIGSTOP (`frozen = true`) or SIGCONT to the server and every backend: connections stay open, nothing answers. */
  freeze(frozen: boolean): Promise<void>;
  /** Stops it and removes its directory. */
  destroy(): Promise<void>;
}

async function asPostgres(cmd: string, args: string[]): Promise<void> {
  const root = process.getuid?.() === 0;
  const [file, argv] = root ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
  await run(file, argv, { timeout: 60_000 });
}

/** Initialises and starts a cluster on a free port. */
export async function startPostgres(): Promise<TestPostgres> {
  const bin = binDir();
  const dir = mkdtempSync(join(tmpdir(), 'gf-pg-'));
  if (process.getuid?.() === 0) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    chownSync(dir, Number(stdout.trim()), Number(gid.trim()));
  }
  const data = join(dir, 'data');
  await asPostgres(join(bin, 'initdb'), [
    '-D',
    data,
    '-U',
    'postgres',
    '-A',
    'trust',
    '--no-sync',
    '-E',
    'UTF8',
  ]);
  const port = await freePort();
  const ctl = (...args: string[]) => asPostgres(join(bin, 'pg_ctl'), ['-D', data, ...args]);
  const start = () =>
    ctl(
      '-w',
      '-l',
      join(dir, 'server.log'),
      '-o',
      `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c max_connections=200`,
      'start',
    );
  let running = false;
  await start();
  running = true;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    bin,
    async stop() {
      if (!running) return;
      await ctl('-w', '-m', 'fast', 'stop');
      running = false;
    },
    async start() {
      if (running) return;
      await start();
      running = true;
    },
    async freeze(frozen) {
      const postmaster = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
      const { stdout } = await run('pgrep', ['-P', String(postmaster)]).catch(() => ({ stdout: '' }));
      const pids = [postmaster, ...stdout.split('\n').filter(Boolean).map(Number)];
      for (const pid of pids) process.kill(pid, frozen ? 'SIGSTOP' : 'SIGCONT');
    },
    async destroy() {
      if (running) await ctl('-w', '-m', 'immediate', 'stop').catch(() => {});
      running = false;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
