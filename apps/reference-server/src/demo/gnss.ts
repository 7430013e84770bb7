/**
 * A GNSS receiver for the demo's Proof-of-Geofencing part: `gpsfake` (Debian `gpsd-clients`, with its
 * own gpsd) replaying a stationary NMEA 0183 track at a given point, timed from now. A location trust
 * level above `none` needs a sensor-bound GNSS fix, and this is how the demo host gets one without
 * hardware; the agent reads it through the SDK's real gpsd provider.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';

const pad = (n: number, w: number) => String(n).padStart(w, '0');

function sentence(body: string): string {
  let c = 0;
  for (const ch of body) c ^= ch.charCodeAt(0);
  return `$${body}*${c.toString(16).toUpperCase().padStart(2, '0')}\r\n`;
}

function coordinate(value: number, degreeDigits: number, hemispheres: [string, string]): string {
  const a = Math.abs(value);
  const deg = Math.floor(a);
  const min = (a - deg) * 60;
  return `${pad(deg, degreeDigits)}${min.toFixed(4).padStart(7, '0')},${value >= 0 ? hemispheres[0] : hemispheres[1]}`;
}

/** Sky view of the 9 satellites in GSA, so gpsd computes x/y DOPs (and from them epx/epy). */
const SKY = [
  [2, 45, 40, 42],
  [5, 30, 110, 40],
  [7, 60, 200, 45],
  [9, 15, 300, 35],
  [13, 70, 20, 47],
  [16, 25, 170, 38],
  [20, 40, 250, 41],
  [26, 20, 80, 36],
  [29, 55, 330, 44],
];

/** One fix per second at (`lat`, `lon`) from `start`: RMC, GGA, GSA, GSV, GST per epoch. */
export function stationaryTrack(lat: number, lon: number, start: Date, epochs: number): string {
  const la = coordinate(lat, 2, ['N', 'S']);
  const lo = coordinate(lon, 3, ['E', 'W']);
  const gsv: string[] = [];
  for (let i = 0; i < SKY.length; i += 4) {
    const sats = SKY.slice(i, i + 4)
      .map(([p, e, a, s]) => `${pad(p as number, 2)},${pad(e as number, 2)},${pad(a as number, 3)},${s}`)
      .join(',');
    gsv.push(`GPGSV,3,${i / 4 + 1},09,${sats}`);
  }
  let out = '';
  for (let i = 0; i < epochs; i++) {
    const t = new Date(start.getTime() + i * 1000);
    const hms = `${pad(t.getUTCHours(), 2)}${pad(t.getUTCMinutes(), 2)}${pad(t.getUTCSeconds(), 2)}.00`;
    const dmy = `${pad(t.getUTCDate(), 2)}${pad(t.getUTCMonth() + 1, 2)}${pad(t.getUTCFullYear() % 100, 2)}`;
    out += sentence(`GPRMC,${hms},A,${la},${lo},0.0,0.0,${dmy},,,A`);
    out += sentence(`GPGGA,${hms},${la},${lo},1,09,0.9,25.0,M,-32.0,M,,`);
    out += sentence('GPGSA,A,3,02,05,07,09,13,16,20,26,29,,,,1.6,0.9,1.3');
    for (const g of gsv) out += sentence(g);
    out += sentence(`GPGST,${hms},2.1,5.0,3.0,45.0,4.0,6.0,8.0`);
  }
  return out;
}

async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address() as { port: number };
  await new Promise((r) => srv.close(r));
  return port;
}

/** A running simulated receiver. */
export interface SimulatedReceiver {
  /** gpsd's TCP port on 127.0.0.1. */
  port: number;
  stop(): Promise<void>;
}

/** Starts gpsfake replaying {@link stationaryTrack} (10 minutes) and waits until gpsd reports a fix. */
export async function startSimulatedReceiver(
  dir: string,
  point: { lat: number; lon: number },
): Promise<SimulatedReceiver> {
  const file = join(dir, 'receiver.nmea');
  writeFileSync(file, stationaryTrack(point.lat, point.lon, new Date(), 600));
  const port = await freePort();
  // -c 0.14: about one epoch (7 sentences) per second; -n: feed without waiting for a client.
  const child: ChildProcess = spawn(
    'gpsfake',
    ['-P', String(port), '-q', '-n', '-c', '0.14', '-W', '900', file],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr += String(d);
  });
  const exited = once(child, 'exit').catch(() => undefined);
  const stop = async () => {
    if (child.exitCode === null) child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 3000).unref())]);
    if (child.exitCode === null) child.kill('SIGKILL');
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    const fixed = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => s.write('?WATCH={"enable":true,"json":true}\n'));
      let buf = '';
      s.setEncoding('utf8');
      s.setTimeout(3000, () => {
        s.destroy();
        resolve(false);
      });
      s.on('data', (chunk: string) => {
        buf += chunk;
        if (/"class":"TPV"[^\n]*"lat":/.test(buf)) {
          s.destroy();
          resolve(true);
        }
      });
      s.on('error', () => resolve(false));
    });
    if (fixed) return { port, stop };
    if (Date.now() > deadline || child.exitCode !== null) {
      await stop();
      throw new Error(`gpsfake gave no fix: ${stderr.trim() || 'no output'}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}
