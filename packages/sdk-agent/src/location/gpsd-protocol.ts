/**
 * Parsing of the gpsd JSON protocol (https://gpsd.gitlab.io/gpsd/gpsd_json.html): only the members
 * the agent relies on, each type-checked, so a hostile or broken daemon cannot smuggle values of the
 * wrong type into a signed payload.
 */

/** A TPV (time-position-velocity) report, reduced to what the agent uses. */
export interface GpsdTpv {
  class: 'TPV';
  /** Device path the report came from. */
  device?: string;
  /** 0 = unknown, 1 = no fix, 2 = 2D, 3 = 3D. */
  mode: number;
  /**
   * GPS fix status (gpsd ≥ 3.20): 0 unknown, 1 normal, 2 DGPS, 3 RTK fixed, 4 RTK float, 5 dead
   * reckoning, 6 GNSS + dead reckoning, 7 time only (surveyed position), 8 simulated, 9 P(Y).
   * Absent when gpsd does not say (older daemons, receivers that do not report it).
   */
  status?: number;
  /** ISO 8601 fix time (receiver clock). */
  time?: string;
  lat?: number;
  lon?: number;
  /** Longitude error estimate, metres (95 %). */
  epx?: number;
  /** Latitude error estimate, metres (95 %). */
  epy?: number;
  /** Horizontal error estimate, metres. */
  eph?: number;
}

/** A DEVICE report: receiver identity. */
export interface GpsdDevice {
  class: 'DEVICE';
  path: string;
  driver?: string;
  subtype?: string;
  subtype1?: string;
}

/** A DEVICES report: all devices gpsd knows. */
export interface GpsdDevices {
  class: 'DEVICES';
  devices: GpsdDevice[];
}

/** A report the agent understands. */
export type GpsdReport = GpsdTpv | GpsdDevice | GpsdDevices;

/** Longest line accepted from gpsd (its own reports stay far below this). */
export const MAX_GPSD_LINE = 64 * 1024;

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const str = (v: unknown, max = 256): v is string => typeof v === 'string' && v.length <= max;

function device(v: unknown): GpsdDevice | undefined {
  if (v === null || typeof v !== 'object') return undefined;
  const o = v as Record<string, unknown>;
  if (!str(o.path) || o.path.length === 0) return undefined;
  const d: GpsdDevice = { class: 'DEVICE', path: o.path };
  if (str(o.driver)) d.driver = o.driver;
  if (str(o.subtype)) d.subtype = o.subtype;
  if (str(o.subtype1)) d.subtype1 = o.subtype1;
  return d;
}

/**
 * Parses one line from gpsd. Returns `undefined` for anything that is not a well-formed TPV,
 * DEVICE or DEVICES report (other classes, bad JSON, wrong member types); never throws.
 */
export function parseGpsdLine(line: string): GpsdReport | undefined {
  if (line.length === 0 || line.length > MAX_GPSD_LINE) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  switch (o.class) {
    case 'TPV': {
      const mode = Number.isInteger(o.mode) ? (o.mode as number) : 0;
      if (mode < 0 || mode > 3) return undefined;
      const tpv: GpsdTpv = { class: 'TPV', mode };
      if (str(o.device)) tpv.device = o.device;
      if (o.status !== undefined) {
        // A status the agent cannot read could be anything (simulator, dead reckoning): keep it
        // as an out-of-range marker so the quality mapping refuses it rather than assume GNSS.
        tpv.status = Number.isInteger(o.status) && (o.status as number) >= 0 ? (o.status as number) : -1;
      }
      if (str(o.time, 64) && Number.isFinite(Date.parse(o.time))) tpv.time = o.time;
      if (finite(o.lat) && o.lat >= -90 && o.lat <= 90) tpv.lat = o.lat;
      if (finite(o.lon) && o.lon >= -180 && o.lon <= 180) tpv.lon = o.lon;
      for (const k of ['epx', 'epy', 'eph'] as const) {
        const e = o[k];
        if (finite(e) && e >= 0) tpv[k] = e;
      }
      return tpv;
    }
    case 'DEVICE':
      return device(o);
    case 'DEVICES': {
      if (!Array.isArray(o.devices)) return undefined;
      return {
        class: 'DEVICES',
        devices: o.devices.map(device).filter((d): d is GpsdDevice => d !== undefined),
      };
    }
    default:
      return undefined;
  }
}

/**
 * Horizontal accuracy (metres) of a TPV, never better than any estimate the receiver gives: the
 * largest of `eph` and the per-axis circle √(epx² + epy²) (which is ≥ either axis), rounded *up*
 * to the centimetre. With `eph` and only one axis, max(eph, that axis). `undefined` when the
 * receiver gives neither `eph` nor both axes (one axis alone bounds nothing; none is invented).
 */
export function tpvAccuracy(tpv: GpsdTpv): number | undefined {
  const candidates: number[] = [];
  if (tpv.eph !== undefined) candidates.push(tpv.eph);
  if (tpv.epx !== undefined && tpv.epy !== undefined) candidates.push(Math.hypot(tpv.epx, tpv.epy));
  else if (tpv.eph !== undefined) {
    if (tpv.epx !== undefined) candidates.push(tpv.epx);
    if (tpv.epy !== undefined) candidates.push(tpv.epy);
  }
  if (candidates.length === 0) return undefined;
  const worst = Math.max(...candidates);
  // The nearest centimetre, or the next one up when that is below the estimate (Math.ceil would
  // turn a binary 17.1 × 100 = 1710.0000000000002 into 17.11).
  const cents = Math.round(worst * 100);
  return cents / 100 >= worst ? cents / 100 : (cents + 1) / 100;
}

/** The gpsd TPV `status` values that are a measured GNSS fix (see {@link GpsdTpv.status}). */
const GNSS_STATUS: ReadonlySet<number> = new Set([0, 1, 2, 3, 4, 9]);

/**
 * The location quality of a TPV, by its `status`: a measured GNSS fix (no status, 0 unknown,
 * 1 normal, 2 DGPS, 3/4 RTK, 9 P(Y)) is `GNSS`; 5 (dead reckoning) and 6 (GNSS + dead reckoning,
 * partly extrapolated) are `dead-reckoning`; 7 (time mode: a surveyed or configured position, not
 * this fix's) is `static`; 8 is `simulated`. Any other value is `undefined` (not trusted).
 */
export function tpvQuality(tpv: GpsdTpv): 'GNSS' | 'dead-reckoning' | 'static' | 'simulated' | undefined {
  const st = tpv.status;
  if (st === undefined || GNSS_STATUS.has(st)) return 'GNSS';
  if (st === 5 || st === 6) return 'dead-reckoning';
  if (st === 7) return 'static';
  if (st === 8) return 'simulated';
  return undefined;
}

/**
 * Splits a byte stream into lines, refusing to buffer more than {@link MAX_GPSD_LINE} characters
 * of an unterminated line (a misbehaving peer cannot grow memory without bound).
 */
export class LineSplitter {
  private buf = '';
  /** Feeds a chunk; returns the complete lines it finished. Over-long lines are dropped. */
  push(chunk: string): string[] {
    this.buf += chunk;
    const parts = this.buf.split('\n');
    this.buf = parts.pop() ?? '';
    if (this.buf.length > MAX_GPSD_LINE) this.buf = '';
    return parts.map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l)).filter((l) => l.length <= MAX_GPSD_LINE);
  }
}
