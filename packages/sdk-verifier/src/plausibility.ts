/**
 * Movement plausibility (SPEC §5.3): an agent cannot be in two places farther apart than it could
 * have travelled between the two fixes. The collector keeps each agent's last accepted position in
 * its nonce store (shared by replicas) and refuses a location that implies a speed above the
 * configured maximum — allowing for both accuracy circles, so that imprecise fixes are never
 * called a movement.
 */
import { GeofenceError } from './errors.js';
import type { AcceptedPosition, NonceStore } from './storage/nonce-store.js';
import { StoreUnavailableError } from './storage/store-fault.js';

/**
 * Default maximum plausible speed, km/h (`MAX_SPEED_KMH`): faster than any ground vehicle and most
 * airliners over ground, slower than a fix teleporting across a continent.
 * @public
 */
export const DEFAULT_MAX_SPEED_KMH = 1000;

/** Mean Earth radius (IUGG), metres; the great-circle distance differs from the WGS-84 geodesic by at most about 0.5 %. */
const EARTH_RADIUS_M = 6_371_008.8;

/** Half the Earth's circumference on that sphere: no two points are farther apart. */
const MAX_DISTANCE_M = Math.PI * EARTH_RADIUS_M;

/**
 * Great-circle (haversine) distance between two points, metres.
 * @public
 */
export function greatCircleMetres(aLat: number, aLon: number, bLat: number, bLon: number): number {
  const rad = Math.PI / 180;
  const dLat = (bLat - aLat) * rad;
  const dLon = (bLon - aLon) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(aLat * rad) * Math.cos(bLat * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_RADIUS_M * Math.asin(Math.min(1, Math.sqrt(h)));
}

/**
 * How fast an agent must have moved between two fixes, at least.
 * @public
 */
export interface MovementAssessment {
  /** Whether the least speed is at most the maximum. */
  plausible: boolean;
  /** Great-circle distance between the two points, metres. */
  distance_m: number;
  /** The distance minus both accuracy radii (never negative): the least distance travelled. */
  separation_m: number;
  /** Time between the two fixes, seconds (absolute: fixes may arrive out of order). */
  elapsed_seconds: number;
  /**
   * The least speed, km/h: `separation_m` over `elapsed_seconds`; `null` when two separated
   * positions carry the same fix time (an infinite speed).
   */
  speed_kmh: number | null;
}

/**
 * The least speed an agent must have had to report `previous` and then `next`: the distance
 * between the points minus both accuracy radii (either point may be anywhere inside its circle),
 * over the time between the fixes. Two circles that overlap need no movement at all.
 * @public
 */
export function assessMovement(
  previous: AcceptedPosition,
  next: AcceptedPosition,
  maxSpeedKmh: number,
): MovementAssessment {
  const distance = greatCircleMetres(previous.lat, previous.lon, next.lat, next.lon);
  const separation = Math.max(0, distance - previous.accuracy - next.accuracy);
  const elapsed = Math.abs(next.at - previous.at) / 1000;
  let speed: number | null;
  if (separation === 0) speed = 0;
  else if (elapsed === 0) speed = null;
  else speed = separation / 1000 / (elapsed / 3600);
  return {
    plausible: speed !== null && speed <= maxSpeedKmh,
    distance_m: distance,
    separation_m: separation,
    elapsed_seconds: elapsed,
    speed_kmh: speed,
  };
}

/**
 * How long a position must be kept, seconds: after that, even the largest possible distance is
 * covered at `maxSpeedKmh`, so no later fix could be refused against it.
 * @public
 */
export function positionRetentionSeconds(maxSpeedKmh: number): number {
  return Math.ceil((MAX_DISTANCE_M / 1000 / maxSpeedKmh) * 3600);
}

/** Compare-and-set rounds before concurrent updates of one agent count as a store fault. */
const MAX_ROUNDS = 8;

/**
 * Checks `next` against the agent's last accepted position and, when plausible, records it (the
 * later of the two fixes is kept). Throws {@link GeofenceError} `geolocation_policy` with
 * `details.check: "implausible_movement"` when the movement is faster than `maxSpeedKmh`; a store
 * that cannot answer, or that keeps losing the compare-and-set to concurrent requests of the
 * same agent, is a {@link StoreUnavailableError} (503, Retry-After).
 * @public
 */
export async function checkMovement(
  store: Pick<NonceStore, 'lastPosition' | 'replacePosition'>,
  keyid: string,
  agentName: string,
  next: AcceptedPosition,
  maxSpeedKmh: number,
): Promise<void> {
  const until = new Date(next.at + positionRetentionSeconds(maxSpeedKmh) * 1000);
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const previous = await store.lastPosition(keyid);
    if (previous) {
      const a = assessMovement(previous, next, maxSpeedKmh);
      if (!a.plausible) {
        throw new GeofenceError('geolocation_policy', undefined, {
          details: {
            agent_name: agentName,
            check: 'implausible_movement',
            reason: 'Movement since the last accepted location is faster than the maximum speed',
            expected: { max_speed_kmh: maxSpeedKmh },
            received: {
              speed_kmh: a.speed_kmh,
              distance_m: Math.round(a.distance_m),
              separation_m: Math.round(a.separation_m),
              elapsed_seconds: a.elapsed_seconds,
              previous: positionView(previous),
              current: positionView(next),
            },
          },
        });
      }
      // An older fix arriving late is checked, but the newer one stays the reference.
      if (next.at <= previous.at) return;
    }
    if (await store.replacePosition(keyid, previous, next, until)) return;
  }
  throw new StoreUnavailableError('nonce_store', new Error('position compare-and-set kept failing'));
}

function positionView(p: AcceptedPosition) {
  return { lat: p.lat, lon: p.lon, accuracy: p.accuracy, fix_time: new Date(p.at).toISOString() };
}

/**
 * Validates a maximum speed option: a positive finite number of km/h, or `false` (no check).
 * @throws TypeError otherwise
 * @public
 */
export function resolveMaxSpeed(value: number | false | undefined): number | undefined {
  if (value === false) return undefined;
  const v = value ?? DEFAULT_MAX_SPEED_KMH;
  if (!(typeof v === 'number' && Number.isFinite(v) && v > 0))
    throw new TypeError(`maxSpeedKmh must be a positive number of km/h or false, got ${String(value)}`);
  return v;
}
