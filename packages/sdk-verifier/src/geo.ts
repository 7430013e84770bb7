/**
 * Geo policy engine (SPEC §5.3). One engine evaluates the per-agent policy (registry record) and the
 * global policy (configuration): hierarchical region/state/city allow entries, GeoJSON
 * Polygon/MultiPolygon fences with a conservative accuracy-circle rule, minimum location quality and
 * maximum fix age.
 */
import { booleanPointInPolygon } from '@turf/boolean-point-in-polygon';
import type { Polygon } from 'geojson';
import { z } from 'zod';
import { BUILTIN_REGION_TABLE, boxContains, type RegionBox } from './geocode.js';
import { foldPlaceName } from './places/fold.js';
import { type GeographicRegion, LOCATION_QUALITIES, type LocationQuality } from './protocol.js';

const allowName = z.string().min(1).max(256);

/**
 * One hierarchical allow entry. `{region}` allows every state and city of the region,
 * `{region, state}` every city of the state, `{region, state, city}` exactly that city.
 * @public
 */
export const geoAllowEntrySchema = z
  .strictObject({ region: allowName, state: allowName.optional(), city: allowName.optional() })
  .refine((e) => e.city === undefined || e.state !== undefined, {
    message: 'an entry with a city needs a state',
  });

const position = z.tuple([z.number().min(-180).max(180), z.number().min(-90).max(90)]).rest(z.number());
const ring = z
  .array(position)
  .min(4)
  .max(100_000)
  .refine((r) => r[0]![0] === r[r.length - 1]![0] && r[0]![1] === r[r.length - 1]![1], {
    message: 'a linear ring must be closed (first position == last position)',
  });
const polygonSchema = z.strictObject({
  type: z.literal('Polygon'),
  coordinates: z.array(ring).min(1).max(10_000),
  bbox: z.array(z.number()).optional(),
});
const multiPolygonSchema = z.strictObject({
  type: z.literal('MultiPolygon'),
  coordinates: z.array(z.array(ring).min(1).max(10_000)).min(1).max(10_000),
  bbox: z.array(z.number()).optional(),
});
const regionBoxSchema = z.strictObject({
  box: z
    .tuple([
      z.number().min(-180).max(180),
      z.number().min(-90).max(90),
      z.number().min(-180).max(180),
      z.number().min(-90).max(90),
    ])
    .refine((b) => b[0] <= b[2] && b[1] <= b[3], { message: 'box must be [minLon, minLat, maxLon, maxLat]' })
    .readonly(),
  place: z
    .strictObject({ region: allowName, state: allowName.optional(), city: allowName.optional() })
    .refine((p) => p.city === undefined || p.state !== undefined, {
      message: 'a place with a city needs a state',
    }),
});

const fenceGeometry = z.discriminatedUnion('type', [polygonSchema, multiPolygonSchema]);

/**
 * A geofence: a GeoJSON (RFC 7946) Polygon or MultiPolygon, bare or wrapped in a Feature.
 * Edges are straight lines in longitude/latitude (as in `@turf/*`); polygons must not cross the
 * antimeridian (split them into a MultiPolygon, as RFC 7946 §3.1.9 recommends).
 * @public
 */
export const geoFenceSchema = z.union([
  fenceGeometry,
  z.strictObject({
    type: z.literal('Feature'),
    geometry: fenceGeometry,
    properties: z.record(z.string(), z.unknown()).nullable(),
    id: z.union([z.string(), z.number()]).optional(),
    bbox: z.array(z.number()).optional(),
  }),
]);
/**
 * A geofence.
 * @public
 */
export type GeoFence = z.infer<typeof geoFenceSchema>;

/**
 * A geo policy (SPEC §5.3). Every present constraint must hold; absent constraints do not restrict.
 * @public
 */
export const geoPolicySchema = z.strictObject({
  /** Hierarchical allow list; when present and non-empty the claimed place must match one entry. */
  allow: z.array(geoAllowEntrySchema).max(100_000).optional(),
  /** Fences; when present and non-empty the reported point and its accuracy circle must lie inside one. */
  fences: z.array(geoFenceSchema).max(10_000).optional(),
  /** Minimum location quality (GNSS \> mobile \> wifi \> ip \> static). */
  min_quality: z.enum(LOCATION_QUALITIES).optional(),
  /** Maximum age of the fix in seconds (requires `fix_time`). */
  max_fix_age_seconds: z.number().positive().finite().optional(),
  /**
   * Reverse-geocoding table for the region consistency check (SPEC §5.1): when the observation
   * carries both a point and a claimed place, and the point lies in a box of this table, a claimed
   * region/state/city that contradicts the table fails the policy (`region_mismatch`). Default
   * (absent): the built-in table `BUILTIN_REGION_TABLE`. `false` disables the check (for
   * deployments whose place names differ from the table's, e.g. `DE` instead of `EU`/`Germany`).
   */
  region_table: z.union([z.literal(false), z.array(regionBoxSchema).max(100_000)]).optional(),
});
/**
 * A geo policy.
 * @public
 */
export type GeoPolicy = z.infer<typeof geoPolicySchema>;

/**
 * What was observed about a request's location.
 * @public
 */
export interface GeoObservation {
  /** Claimed place (payload `geographic_region`, or the Workload-Geo-ID location at the gateway). */
  region?: Partial<GeographicRegion> | undefined;
  /** Reported point; `accuracy` is a radius in metres. */
  point?: { lat: number; lon: number; accuracy?: number | undefined } | undefined;
  /** Reported quality. */
  quality?: LocationQuality | string | undefined;
  /** Time of the fix (ISO 8601 or Date). */
  fixTime?: string | Date | undefined;
  /** Evaluation time (defaults to now). */
  now?: Date | undefined;
  /** Accepted clock skew for fixes in the future, in seconds (default 60). */
  clockSkewSeconds?: number | undefined;
}

/**
 * Which constraint failed.
 * @public
 */
export type GeoCheck = 'region' | 'region_mismatch' | 'fence' | 'quality' | 'fix_age';

/**
 * Result of {@link evaluateGeoPolicy}.
 * @public
 */
export type GeoDecision =
  | ({ allowed: true } & GeoMatch)
  | { allowed: false; check: GeoCheck; reason: string; expected: unknown; received: unknown };

/**
 * What an allowed observation matched (stored in the collector's record verdict).
 * @public
 */
export interface GeoMatch {
  /**
   * The allow entry that matched, spelled as the policy wrote it (not the agent's string, which
   * may differ in case or normalisation); absent when the policy has no allow list.
   */
  matched?: GeographicRegion;
}

export { caseFold, foldPlaceName } from './places/fold.js';

/** Compiled allow entries; every level keeps the name as the policy spelled it. */
interface RegionNode {
  name: string;
  all: boolean;
  states: Map<string, { name: string; all: boolean; cities: Map<string, string> }>;
}

type Ring = ReadonlyArray<readonly number[]>;
interface CompiledPolygon {
  geometry: Polygon;
  rings: Ring[];
  bbox: [number, number, number, number];
}

interface CompiledPolicy {
  regions: Map<string, RegionNode> | undefined;
  polygons: CompiledPolygon[] | undefined;
  minQualityRank: number | undefined;
  maxFixAgeMs: number | undefined;
  regionTable: readonly RegionBox[] | undefined;
  source: GeoPolicy;
}

const compiled = new WeakMap<GeoPolicy, CompiledPolicy>();

function compileRegions(entries: GeoPolicy['allow']): Map<string, RegionNode> | undefined {
  if (!entries || entries.length === 0) return undefined;
  const map = new Map<string, RegionNode>();
  for (const e of entries) {
    const r = foldPlaceName(e.region);
    let node = map.get(r);
    if (!node) {
      node = { name: e.region, all: false, states: new Map() };
      map.set(r, node);
    }
    if (e.state === undefined) {
      node.all = true;
      continue;
    }
    const s = foldPlaceName(e.state);
    let st = node.states.get(s);
    if (!st) {
      st = { name: e.state, all: false, cities: new Map() };
      node.states.set(s, st);
    }
    if (e.city === undefined) st.all = true;
    else if (!st.cities.has(foldPlaceName(e.city))) st.cities.set(foldPlaceName(e.city), e.city);
  }
  return map;
}

function compilePolygons(fences: GeoPolicy['fences']): CompiledPolygon[] | undefined {
  if (!fences || fences.length === 0) return undefined;
  const out: CompiledPolygon[] = [];
  for (const f of fences) {
    const g = f.type === 'Feature' ? f.geometry : f;
    const polys = g.type === 'Polygon' ? [g.coordinates] : g.coordinates;
    for (const rings of polys) {
      let minX = Number.POSITIVE_INFINITY;
      let minY = Number.POSITIVE_INFINITY;
      let maxX = Number.NEGATIVE_INFINITY;
      let maxY = Number.NEGATIVE_INFINITY;
      for (const p of rings[0] ?? []) {
        const [x, y] = p as [number, number];
        if (x < minX) minX = x;
        if (x > maxX) maxX = x;
        if (y < minY) minY = y;
        if (y > maxY) maxY = y;
      }
      out.push({
        geometry: { type: 'Polygon', coordinates: rings as Polygon['coordinates'] },
        rings: rings as Ring[],
        bbox: [minX, minY, maxX, maxY],
      });
    }
  }
  return out;
}

/**
 * Validate a policy and precompute its lookup structures. {@link evaluateGeoPolicy} does this
 * itself (cached per policy object); call it at configuration time to fail early.
 * @throws ZodError when the policy is invalid
 * @public
 */
export function compileGeoPolicy(policy: GeoPolicy): void {
  getCompiled(policy, true);
}

function getCompiled(policy: GeoPolicy, validate: boolean): CompiledPolicy {
  let c = compiled.get(policy);
  if (c) return c;
  const p = validate ? geoPolicySchema.parse(policy) : policy;
  c = {
    regions: compileRegions(p.allow),
    polygons: compilePolygons(p.fences),
    minQualityRank: p.min_quality === undefined ? undefined : LOCATION_QUALITIES.indexOf(p.min_quality),
    maxFixAgeMs: p.max_fix_age_seconds === undefined ? undefined : p.max_fix_age_seconds * 1000,
    regionTable: p.region_table === false ? undefined : (p.region_table ?? BUILTIN_REGION_TABLE),
    source: policy,
  };
  compiled.set(policy, c);
  return c;
}

/**
 * Whether a policy constrains location at all (has allow entries or fences). Callers use this to
 * refuse agents with no geographic policy instead of silently allowing everywhere.
 * @public
 */
export function geoPolicyRestricts(policy: GeoPolicy | undefined): boolean {
  return !!policy && ((policy.allow?.length ?? 0) > 0 || (policy.fences?.length ?? 0) > 0);
}

/** The matching allow entry, in the policy's spelling, or `undefined`. */
function matchRegion(
  regions: Map<string, RegionNode>,
  obs: GeoObservation['region'],
): GeographicRegion | undefined {
  // Missing or empty fields never match a non-empty requirement.
  const region = typeof obs?.region === 'string' && obs.region !== '' ? foldPlaceName(obs.region) : undefined;
  if (region === undefined) return undefined;
  const node = regions.get(region);
  if (!node) return undefined;
  if (node.all) return { region: node.name };
  const state = typeof obs?.state === 'string' && obs.state !== '' ? foldPlaceName(obs.state) : undefined;
  if (state === undefined) return undefined;
  const st = node.states.get(state);
  if (!st) return undefined;
  if (st.all) return { region: node.name, state: st.name };
  const city = typeof obs?.city === 'string' && obs.city !== '' ? foldPlaceName(obs.city) : undefined;
  const cityName = city === undefined ? undefined : st.cities.get(city);
  return cityName === undefined ? undefined : { region: node.name, state: st.name, city: cityName };
}

function folded(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? foldPlaceName(v) : undefined;
}

/** Every level both places name is equal after folding (a level either leaves out is no conflict). */
function compatible(
  place: GeographicRegion,
  claim: { region?: string | undefined; state?: string | undefined; city?: string | undefined },
): boolean {
  for (const level of ['region', 'state', 'city'] as const) {
    const a = folded(place[level]);
    if (a !== undefined && claim[level] !== undefined && a !== claim[level]) return false;
  }
  return true;
}

/**
 * Region consistency (SPEC §5.1): does the claimed place contradict the reported point according
 * to `table`? Only what the table knows can be concluded:
 * - the point lies in no box → nothing (`false`): the table does not cover it;
 * - no box containing the point is compatible with the claim (some level both name differs) →
 *   contradiction (Berlin coordinates with a claimed US/California/Santa Clara);
 * - the claim names a city the table has boxes for (with compatible region/state), and none of
 *   them contains the point → contradiction (coordinates in downtown San Jose claiming Santa
 *   Clara). A city the table does not know is judged on region/state only, so an agent in a
 *   town next to a (generous) city box is not rejected.
 */
function regionContradiction(
  table: readonly RegionBox[],
  region: GeoObservation['region'],
  lat: number,
  lon: number,
): boolean {
  const claim = { region: folded(region?.region), state: folded(region?.state), city: folded(region?.city) };
  if (claim.region === undefined && claim.state === undefined && claim.city === undefined) return false;
  let covered = false;
  let consistent = false;
  let cityKnown = false;
  let cityContains = false;
  for (const { box, place } of table) {
    const inside = boxContains(box, lat, lon);
    const ok = compatible(place, claim);
    if (inside) {
      covered = true;
      if (ok) consistent = true;
    }
    if (claim.city !== undefined && ok && folded(place.city) === claim.city) {
      cityKnown = true;
      if (inside) cityContains = true;
    }
  }
  if (!covered) return false;
  return !consistent || (cityKnown && !cityContains);
}

// Conservative metres-per-degree: the shortest meridian degree on the WGS84 ellipsoid, and the
// polar radius for parallels, so computed distances never exceed true distances.
const M_PER_DEG_LAT = 110_574;
const M_PER_DEG_LON_AT_EQUATOR = (6_356_752 * Math.PI) / 180;

/** Squared distance from (0,0) to segment a–b in a plane. */
function segDist2(ax: number, ay: number, bx: number, by: number): number {
  const dx = bx - ax;
  const dy = by - ay;
  const len2 = dx * dx + dy * dy;
  let t = len2 === 0 ? 0 : -(ax * dx + ay * dy) / len2;
  if (t < 0) t = 0;
  else if (t > 1) t = 1;
  const x = ax + t * dx;
  const y = ay + t * dy;
  return x * x + y * y;
}

/**
 * Accuracy-circle rule: the point lies strictly inside the polygon (a point on the border is not
 * inside) and no edge of any ring (outer or hole) is closer than `accuracy` metres. Distances use
 * a local plane around the point with conservative scales, consistent with the planar
 * longitude/latitude edges `@turf/boolean-point-in-polygon` uses.
 */
function circleInside(poly: CompiledPolygon, lon: number, lat: number, accuracy: number): boolean {
  const [minX, minY, maxX, maxY] = poly.bbox;
  if (lon <= minX || lon >= maxX || lat <= minY || lat >= maxY) return false;
  if (!booleanPointInPolygon([lon, lat], poly.geometry, { ignoreBoundary: true })) return false;
  if (accuracy <= 0) return true;
  const dLat = accuracy / M_PER_DEG_LAT;
  const worstLat = Math.min(90, Math.abs(lat) + dLat);
  const kx = M_PER_DEG_LON_AT_EQUATOR * Math.cos((worstLat * Math.PI) / 180);
  const ky = M_PER_DEG_LAT;
  // The circle reaches beyond the bbox: cannot be inside.
  if ((lat - minY) * ky < accuracy || (maxY - lat) * ky < accuracy) return false;
  if (kx <= 0) return false;
  if ((lon - minX) * kx < accuracy || (maxX - lon) * kx < accuracy) return false;
  const acc2 = accuracy * accuracy;
  for (const r of poly.rings) {
    for (let i = 1; i < r.length; i++) {
      const a = r[i - 1]!;
      const b = r[i]!;
      const d2 = segDist2((a[0]! - lon) * kx, (a[1]! - lat) * ky, (b[0]! - lon) * kx, (b[1]! - lat) * ky);
      if (d2 < acc2) return false;
    }
  }
  return true;
}

function qualityRank(q: unknown): number {
  return typeof q === 'string' ? (LOCATION_QUALITIES as readonly string[]).indexOf(q) : -1;
}

/**
 * Evaluate one policy against an observation (SPEC §5.3). Checks, in order: region hierarchy,
 * region consistency (a claimed place that contradicts the reported point according to the
 * policy's `region_table`, default the built-in table; a point outside every box of the table
 * concludes nothing), fences, minimum quality, maximum fix age. The first failing check is reported.
 * The policy is validated and compiled on first use and cached per policy object.
 * @public
 */
export function evaluateGeoPolicy(policy: GeoPolicy, observation: GeoObservation): GeoDecision {
  const c = getCompiled(policy, true);
  const matched = c.regions ? matchRegion(c.regions, observation.region) : undefined;
  if (c.regions && !matched) {
    return {
      allowed: false,
      check: 'region',
      reason: 'Location is not in an allowed region',
      expected: policy.allow,
      received: observation.region ?? null,
    };
  }
  const pt = observation.point;
  if (
    c.regionTable !== undefined &&
    observation.region !== undefined &&
    pt !== undefined &&
    Number.isFinite(pt.lat) &&
    Number.isFinite(pt.lon) &&
    regionContradiction(c.regionTable, observation.region, pt.lat, pt.lon)
  ) {
    return {
      allowed: false,
      check: 'region_mismatch',
      reason: 'Claimed region contradicts the reported coordinates',
      expected: {
        places_at_point: c.regionTable.filter((e) => boxContains(e.box, pt.lat, pt.lon)).map((e) => e.place),
      },
      received: { region: observation.region, point: { lat: pt.lat, lon: pt.lon } },
    };
  }
  if (c.polygons) {
    const ok =
      pt !== undefined &&
      Number.isFinite(pt.lat) &&
      Number.isFinite(pt.lon) &&
      (pt.accuracy === undefined || (Number.isFinite(pt.accuracy) && pt.accuracy >= 0)) &&
      c.polygons.some((poly) => circleInside(poly, pt.lon, pt.lat, pt.accuracy ?? 0));
    if (!ok) {
      return {
        allowed: false,
        check: 'fence',
        reason: pt
          ? 'Location (with its accuracy circle) is not inside an allowed fence'
          : 'No precise location',
        expected: { fences: c.polygons.length },
        received: pt ?? null,
      };
    }
  }
  if (c.minQualityRank !== undefined) {
    const rank = qualityRank(observation.quality);
    if (rank < 0 || rank > c.minQualityRank) {
      return {
        allowed: false,
        check: 'quality',
        reason: 'Location quality below the required minimum',
        expected: { min_quality: policy.min_quality },
        received: { quality: observation.quality ?? null },
      };
    }
  }
  if (c.maxFixAgeMs !== undefined) {
    const now = (observation.now ?? new Date()).getTime();
    const fix = observation.fixTime === undefined ? Number.NaN : new Date(observation.fixTime).getTime();
    const skewMs = (observation.clockSkewSeconds ?? 60) * 1000;
    if (!Number.isFinite(fix) || now - fix > c.maxFixAgeMs || fix - now > skewMs) {
      return {
        allowed: false,
        check: 'fix_age',
        reason: Number.isFinite(fix) ? 'Location fix is too old or in the future' : 'No fix time',
        expected: { max_fix_age_seconds: policy.max_fix_age_seconds },
        received: { fix_time: observation.fixTime ?? null },
      };
    }
  }
  return matched ? { allowed: true, matched } : { allowed: true };
}
