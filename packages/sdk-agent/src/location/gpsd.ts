import { createHash } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import {
  DEFAULT_CLOCK_SKEW_SECONDS,
  type GeographicRegion,
  geographicRegionSchema,
  jcs,
  type LocationReading,
} from '@geofence/protocol';
import { labelPoint, lookupRegion, type RegionBox } from './geocode.js';
import {
  type GpsdDevice,
  type GpsdTpv,
  LineSplitter,
  parseGpsdLine,
  tpvAccuracy,
  tpvQuality,
} from './gpsd-protocol.js';
import {
  type LocationObservation,
  type LocationProvider,
  NoLocationError,
  type SensorIdentity,
} from './types.js';

/** Options of {@link gpsdLocation}. */
export interface GpsdLocationOptions {
  /** gpsd host (default `127.0.0.1`). */
  host?: string;
  /** gpsd port (default 2947). */
  port?: number;
  /**
   * A fix older than this (by its receiver time, or by when gpsd last delivered it) is not used
   * (default 10 s).
   */
  maxFixAgeSeconds?: number;
  /**
   * A fix dated more than this many seconds after the agent's clock is refused (`future_fix`):
   * the receiver's clock or the fix is wrong (default {@link DEFAULT_CLOCK_SKEW_SECONDS}, the
   * verifier's default skew).
   */
  clockSkewSeconds?: number;
  /**
   * How a fix maps to region/state/city: a fixed place for every fix, or a table of boxes that is
   * searched before the shipped place table (`labelPoint`: ISO 3166-1 country and first-level
   * subdivision boundaries, e.g. `{region: 'US', state: 'California'}`; no cities).
   */
  regionMapping?: GeographicRegion | readonly RegionBox[];
  /** Also use the shipped place table (default true). */
  useBuiltinTable?: boolean;
  /** Only use reports of this device path (default: any device gpsd reports). */
  device?: string;
  /** How long `current()` waits for a first fix after (re)connecting (default 5000 ms). */
  fixTimeoutMs?: number;
  /** TCP connect timeout (default 3000 ms). */
  connectTimeoutMs?: number;
  /** Clock in ms since the epoch (tests). */
  now?: () => number;
}

interface Fix {
  tpv: GpsdTpv & { lat: number; lon: number; time: string };
  receivedAt: number;
}

/** SHA-256 (hex) of the JCS of a sensor identity: the payload's `sensor_id_hash`. */
export function sensorIdHash(sensor: SensorIdentity): string {
  return createHash('sha256').update(jcs(sensor)).digest('hex');
}

/**
 * A GNSS location from gpsd over its JSON protocol (SPEC §5.1). Keeps one watch connection open
 * (reconnecting on demand), remembers the latest TPV fix and DEVICE identities, and answers
 * `current()` with the latest fix — or a {@link NoLocationError} when there is no fix, the fix is
 * stale or dated in the future (beyond `clockSkewSeconds`), the mode is below 2D, the fix status
 * is one the agent cannot read, or the coordinates map to no known place. Quality by the TPV
 * `status` ({@link tpvQuality}): `GNSS` for a measured fix, `dead-reckoning` (5, 6), `static` (7,
 * time mode), `simulated` (8). Accuracy by {@link tpvAccuracy}: the worst of the receiver's
 * estimates (`eph`, √(epx² + epy²)), absent when it gives none.
 *
 * @example
 * ```ts
 * const location = gpsdLocation({ port: 2947, maxFixAgeSeconds: 5 });
 * const obs = await location.current(); // obs.reading.lat, obs.geographicRegion.city
 * ```
 */
export function gpsdLocation(options: GpsdLocationOptions = {}): LocationProvider & {
  /** Latest known receiver identity (for enrolment `sensor` fields). */
  sensor(): SensorIdentity | undefined;
} {
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? 2947;
  const maxAgeMs = (options.maxFixAgeSeconds ?? 10) * 1000;
  const skewMs = (options.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS) * 1000;
  const fixTimeoutMs = options.fixTimeoutMs ?? 5000;
  const connectTimeoutMs = options.connectTimeoutMs ?? 3000;
  const now = options.now ?? Date.now;
  if (!(Number.isInteger(port) && port > 0 && port < 65536))
    throw new RangeError('gpsdLocation: invalid port');
  if (!(maxAgeMs > 0)) throw new RangeError('gpsdLocation: maxFixAgeSeconds must be positive');
  if (!(skewMs >= 0 && Number.isFinite(skewMs)))
    throw new RangeError('gpsdLocation: clockSkewSeconds must be a non-negative number');
  const mapping = options.regionMapping;
  const fixedPlace = mapping && !Array.isArray(mapping) ? geographicRegionSchema.parse(mapping) : undefined;
  const boxes: readonly RegionBox[] = Array.isArray(mapping) ? (mapping as readonly RegionBox[]) : [];
  const useTable = options.useBuiltinTable !== false;
  const mapPoint = (lat: number, lon: number) =>
    lookupRegion(lat, lon, boxes) ?? (useTable ? labelPoint(lat, lon) : undefined);

  const devices = new Map<string, GpsdDevice>();
  let fix: Fix | undefined;
  let lostFix = false;
  let socket: Socket | undefined;
  let connecting: Promise<void> | undefined;
  let closed = false;
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const w of waiters) w();
    waiters.clear();
  };

  const onReport = (line: string) => {
    const r = parseGpsdLine(line);
    if (!r) return;
    if (r.class === 'DEVICE') {
      devices.set(r.path, { ...devices.get(r.path), ...r });
    } else if (r.class === 'DEVICES') {
      for (const d of r.devices) devices.set(d.path, { ...devices.get(d.path), ...d });
    } else {
      if (options.device !== undefined && r.device !== options.device) return;
      if (r.mode >= 2 && r.lat !== undefined && r.lon !== undefined && r.time !== undefined) {
        fix = { tpv: { ...r, lat: r.lat, lon: r.lon, time: r.time }, receivedAt: now() };
        lostFix = false;
        wake();
      } else if (r.mode < 2) {
        // The receiver says it has no fix: forget the old one rather than keep reporting it.
        fix = undefined;
        lostFix = true;
        wake();
      }
    }
  };

  const ensureConnected = (): Promise<void> => {
    if (socket && !socket.destroyed) return Promise.resolve();
    if (connecting) return connecting;
    connecting = new Promise<void>((resolve, reject) => {
      const s = connect({ host, port });
      const splitter = new LineSplitter();
      const timer = setTimeout(
        () => s.destroy(new Error(`connect timeout after ${connectTimeoutMs} ms`)),
        connectTimeoutMs,
      );
      s.setEncoding('utf8');
      s.setNoDelay(true);
      s.once('connect', () => {
        clearTimeout(timer);
        socket = s;
        s.write('?WATCH={"enable":true,"json":true}\n');
        resolve();
      });
      s.on('data', (chunk: string) => {
        for (const line of splitter.push(chunk)) onReport(line);
      });
      s.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      s.on('close', () => {
        if (socket === s) socket = undefined;
        // A fix from a connection that is gone cannot be refreshed; drop it.
        fix = undefined;
        wake();
      });
    }).finally(() => {
      connecting = undefined;
    });
    return connecting;
  };

  const waitForFix = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        waiters.delete(done);
        resolve();
      }
      waiters.add(done);
    });

  const sensorFor = (path: string | undefined): SensorIdentity | undefined => {
    if (path === undefined) return undefined;
    const d = devices.get(path);
    const id: SensorIdentity = { type: 'gnss', path };
    if (d?.driver !== undefined) id.driver = d.driver;
    if (d?.subtype !== undefined) id.subtype = d.subtype;
    if (d?.subtype1 !== undefined) id.subtype1 = d.subtype1;
    return id;
  };

  return {
    kind: 'gpsd',
    sensor: () => sensorFor(fix?.tpv.device ?? options.device ?? [...devices.keys()][0]),
    async current(): Promise<LocationObservation> {
      if (closed) throw new NoLocationError('unreachable', 'gpsd provider is closed');
      try {
        await ensureConnected();
      } catch (err) {
        throw new NoLocationError('unreachable', `cannot reach gpsd at ${host}:${port}`, { cause: err });
      }
      const deadline = now() + fixTimeoutMs;
      while (!fix && !lostFix && now() < deadline) await waitForFix(deadline - now());
      const f = fix;
      if (!f) throw new NoLocationError('no_fix', 'gpsd reports no position fix (mode < 2 or none yet)');
      const t = now();
      const fixTime = Date.parse(f.tpv.time);
      if (t - fixTime > maxAgeMs || t - f.receivedAt > maxAgeMs) {
        throw new NoLocationError(
          'stale_fix',
          `latest fix is older than ${maxAgeMs / 1000} s (fix time ${f.tpv.time})`,
        );
      }
      if (fixTime - t > skewMs) {
        throw new NoLocationError(
          'future_fix',
          `latest fix is dated more than ${skewMs / 1000} s in the future (fix time ${f.tpv.time})`,
        );
      }
      const quality = tpvQuality(f.tpv);
      if (quality === undefined) {
        throw new NoLocationError(
          'protocol',
          `gpsd reports a fix status the agent does not know (${f.tpv.status})`,
        );
      }
      const place = fixedPlace ? { ...fixedPlace } : mapPoint(f.tpv.lat, f.tpv.lon);
      if (!place) {
        throw new NoLocationError('unmapped', 'the fix lies outside every configured and shipped region');
      }
      const sensor = sensorFor(f.tpv.device);
      const reading: LocationReading = {
        lat: f.tpv.lat,
        lon: f.tpv.lon,
        quality,
        fix_time: new Date(fixTime).toISOString(),
      };
      const accuracy = tpvAccuracy(f.tpv);
      if (accuracy !== undefined) reading.accuracy = accuracy;
      if (sensor) reading.sensor_id_hash = sensorIdHash(sensor);
      return {
        geographicRegion: place,
        reading,
        quality,
        locationType: 'geographic-region',
        ...(sensor ? { sensor } : {}),
      };
    },
    async close() {
      closed = true;
      wake();
      socket?.destroy();
      socket = undefined;
    },
  };
}
