import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const FIXTURES = new URL('../fixtures/', import.meta.url);

/** One year, in seconds. */
export const YEAR = 365 * 86_400;
/**
 * Tracks (at most four: gpsd serves no more devices) of fixes gpsd reports that must not be signed as a measured GNSS fix, or not at face value. */
export const DOUBTFUL_TRACKS: Array<{ name: string; file: string; lat: number; offsetSeconds?: number }> = [
  { name: 'dead-reckoning', file: 'dead-reckoning.nmea', lat: 35.4 }, // GGA quality 6, RMC mode E
  { name: 'simulated', file: 'simulated.nmea', lat: 33.9 }, // GGA quality 8, RMC mode S
  { name: 'large-eph', file: 'large-eph.nmea', lat: 39.5 }, // HDOP 99.9
  { name: 'future', file: 'future.nmea', lat: 40.6, offsetSeconds: YEAR }, // receiver a year ahead
];

function checksum(body: string): string {
  let c = 0;
  for (const ch of body) c ^= ch.charCodeAt(0);
  return c.toString(16).toUpperCase().padStart(2, '0');
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/**
 * Replays a shipped NMEA fixture "now": rewrites the UTC time and date fields so the first epoch
 * is `start` and each epoch advances one second, repeats the track `repeat` times, and recomputes
 * every checksum. Real receivers report current time; a fixture recorded in the past would be
 * (correctly) rejected as stale.
 */
export function retimeNmea(text: string, start: Date, repeat = 1): string {
  const lines = text.split(/\r?\n/).filter((l) => l.startsWith('$'));
  const epochs: string[][] = [];
  for (const l of lines) {
    if (/^\$..RMC,/.test(l) || epochs.length === 0) epochs.push([]);
    epochs[epochs.length - 1]!.push(l);
  }
  let out = '';
  let i = 0;
  for (let r = 0; r < repeat; r++) {
    for (const epoch of epochs) {
      const t = new Date(start.getTime() + i * 1000);
      i++;
      const hhmmss = `${pad(t.getUTCHours())}${pad(t.getUTCMinutes())}${pad(t.getUTCSeconds())}.00`;
      const ddmmyy = `${pad(t.getUTCDate())}${pad(t.getUTCMonth() + 1)}${pad(t.getUTCFullYear() % 100)}`;
      for (const line of epoch) {
        const body = line.slice(1, line.lastIndexOf('*'));
        const f = body.split(',');
        const type = f[0]!.slice(2);
        if (type === 'RMC') {
          f[1] = hhmmss;
          f[9] = ddmmyy;
        } else if (type === 'GGA' || type === 'GST') {
          f[1] = hhmmss;
        }
        const nb = f.join(',');
        out += `$${nb}*${checksum(nb)}\r\n`;
      }
    }
  }
  return out;
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** A running gpsfake (with its own gpsd) and the device path of each replayed fixture. */
export interface Gpsfake {
  port: number;
  /** fixture name → gpsd device path (found from the first reports of each device). */
  devices: Record<string, string>;
  stop(): Promise<void>;
}

interface Report {
  class?: string;
  device?: string;
  mode?: number;
  lat?: number;
}

/**
 * Starts `gpsfake` replaying the named fixtures (one pseudo-tty device each), retimed to now (plus
 * `offsetSeconds`) and
 * looped, and maps each fixture to its device path by watching gpsd: a fixture whose reports carry
 * no position is matched by elimination.
 */
export async function startGpsfake(
  fixtures: Array<{
    name: string;
    file: string;
    lat?: number;
    /** Shift the replayed time by this many seconds (a receiver whose clock runs ahead). */
    offsetSeconds?: number;
  }>,
): Promise<Gpsfake> {
  const dir = mkdtempSync(join(tmpdir(), 'gpsfake-'));
  const start = new Date();
  const files = fixtures.map((f) => {
    const path = join(dir, f.file);
    const at = new Date(start.getTime() + (f.offsetSeconds ?? 0) * 1000);
    writeFileSync(path, retimeNmea(readFileSync(new URL(f.file, FIXTURES), 'utf8'), at, 30));
    return path;
  });
  const port = await freePort();
  // -c: ~1 epoch per second (7 sentences per epoch); -n: feed without waiting for a client;
  // -W: gpsfake's own watchdog, longer than any test file.
  const child: ChildProcess = spawn(
    'gpsfake',
    ['-P', String(port), '-q', '-n', '-c', '0.14', '-W', '600', ...files],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
      detached: false,
    },
  );
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr += String(d);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const devices = await new Promise<Record<string, string>>((resolve, reject) => {
    const deadline = Date.now() + 20_000;
    const attempt = () => {
      const seen = new Map<string, Report>();
      const s = connect(port, '127.0.0.1', () => s.write('?WATCH={"enable":true,"json":true}\n'));
      let buf = '';
      s.setEncoding('utf8');
      s.on('data', (chunk: string) => {
        buf += chunk;
        const lines = buf.split('\n');
        buf = lines.pop() ?? '';
        for (const l of lines) {
          let r: Report;
          try {
            r = JSON.parse(l);
          } catch {
            continue;
          }
          if (r.class !== 'TPV' || !r.device) continue;
          const prev = seen.get(r.device);
          if (!prev || (prev.lat === undefined && r.lat !== undefined)) seen.set(r.device, r);
        }
        const withPos = fixtures.filter((f) => f.lat !== undefined);
        const map: Record<string, string> = {};
        for (const f of withPos) {
          for (const [dev, r] of seen) {
            if (r.lat !== undefined && Math.abs(r.lat - f.lat!) < 0.5) map[f.name] = dev;
          }
        }
        const rest = fixtures.filter((f) => f.lat === undefined);
        const unclaimed = [...seen.keys()].filter((d) => !Object.values(map).includes(d));
        if (Object.keys(map).length === withPos.length && unclaimed.length === rest.length) {
          rest.forEach((f, i) => {
            map[f.name] = unclaimed[i]!;
          });
          s.destroy();
          resolve(map);
        }
      });
      s.on('error', () => {
        s.destroy();
        if (Date.now() > deadline) reject(new Error(`gpsfake did not come up: ${stderr}`));
        else setTimeout(attempt, 200);
      });
    };
    attempt();
    setTimeout(() => reject(new Error(`gpsfake devices not discovered: ${stderr}`)), 25_000).unref();
  });

  return {
    port,
    devices,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}
