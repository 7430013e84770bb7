/**
 * Geo policy engine (SPEC §5.3). One engine evaluates the per-agent policy (registry record) and the
 * global policy (configuration): hierarchical region/state/city allow entries, GeoJSON
 * Polygon/MultiPolygon fences with a conservative accuracy-circle rule, minimum location quality and
 * maximum fix age.
 */
import {
  boxContains,
  type CompiledPolygon,
  circleInside,
  compilePolygonList,
  DEFAULT_CLOCK_SKEW_SECONDS,
  findRegion,
  findState,
  foldPlaceName,
  type GeographicRegion,
  hasSubdivisions,
  LOCATION_QUALITIES,
  type LocationQuality,
  labelPoint,
  type Place,
  placeAt,
  placeContainsCircle,
  placeExcludesCircle,
  placeLineage,
  type RegionBox,
} from '@geofence/protocol';
import { z } from 'zod';

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
  /**
   * Minimum location quality (GNSS \> mobile \> wifi \> ip \> static \> dead-reckoning \>
   * simulated). Default (absent): {@link DEFAULT_MIN_QUALITY} — a reported `dead-reckoning` or
   * `simulated` quality fails (`quality`); an observation without a quality is not checked.
   */
  min_quality: z.enum(LOCATION_QUALITIES).optional(),
  /** Maximum age of the fix in seconds (requires `fix_time`). */
  max_fix_age_seconds: z.number().positive().finite().optional(),
  /**
   * Maximum accuracy radius in metres: a point with a larger (or no) accuracy fails (`accuracy`).
   */
  max_accuracy_m: z.number().positive().finite().optional(),
  /**
   * Region consistency check (SPEC §5.1): when the observation carries both a point and a claimed
   * place, a claim that contradicts the point fails the policy (`region_mismatch`). Default
   * (absent): the place table (country and first-level subdivision boundaries; the claim is
   * contradicted when the point's whole accuracy circle lies outside the claimed place). A box
   * table replaces it with the operator's boxes (a point outside every box concludes nothing).
   * `false` disables the check.
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
  /**
   * Accepted clock skew for fixes in the future, in seconds (default
   * {@link DEFAULT_CLOCK_SKEW_SECONDS}): a later fix time fails every policy (`fix_in_future`).
   */
  clockSkewSeconds?: number | undefined;
}

/**
 * Which constraint failed.
 * @public
 */
export type GeoCheck =
  | 'region'
  | 'region_mismatch'
  | 'place_unknown'
  | 'fence'
  | 'accuracy'
  | 'quality'
  | 'fix_in_future'
  | 'fix_age';

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
  /**
   * How the entry matched: `boundary` — the point's whole accuracy circle lies inside the
   * boundary of the place (`place`) in the place table; `name` — by the claimed names only (no
   * point, or a region the table does not know).
   */
  matched_by?: 'boundary' | 'name';
  /** ISO 3166 code of the place whose boundary contained the accuracy circle (`US-CA`, `DE`, `EU`). */
  place?: string;
  /** Present when the entry names a city: the table has no city polygons, so the city was compared by name only. */
  city_matched_by?: 'name';
  /** Index (in the policy's `fences`) of the fence whose polygon contained the accuracy circle. */
  fence?: number;
}

/**
 * The minimum quality of a policy without `min_quality`: every measured or configured quality
 * passes, `dead-reckoning` and `simulated` (which rank below it) fail.
 * @public
 */
export const DEFAULT_MIN_QUALITY: LocationQuality = 'static';

interface CompiledPolicy {
  entries: CompiledEntry[] | undefined;
  polygons: CompiledPolygon[] | undefined;
  /** For each entry of `polygons`, the index of the fence it came from (a MultiPolygon gives several). */
  polygonFence: number[];
  /** Explicit `min_quality` rank (an absent or unknown quality fails), or `undefined` (the default). */
  minQualityRank: number | undefined;
  maxFixAgeMs: number | undefined;
  maxAccuracy: number | undefined;
  /** `builtin`: the place table; a box table: the operator's; `undefined`: no consistency check. */
  regionTable: 'builtin' | readonly RegionBox[] | undefined;
  source: GeoPolicy;
}

const compiled = new WeakMap<GeoPolicy, CompiledPolicy>();

function compilePolygons(fences: GeoPolicy['fences'], fenceOf: number[]): CompiledPolygon[] | undefined {
  if (!fences || fences.length === 0) return undefined;
  const out: CompiledPolygon[] = [];
  fences.forEach((f, index) => {
    const g = f.type === 'Feature' ? f.geometry : f;
    const list = compilePolygonList(g.type === 'Polygon' ? [g.coordinates] : g.coordinates);
    out.push(...list);
    for (let i = 0; i < list.length; i++) fenceOf.push(index);
  });
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
  const polygonFence: number[] = [];
  c = {
    entries: compileRegions(p.allow),
    polygons: compilePolygons(p.fences, polygonFence),
    polygonFence,
    minQualityRank: p.min_quality === undefined ? undefined : LOCATION_QUALITIES.indexOf(p.min_quality),
    maxFixAgeMs: p.max_fix_age_seconds === undefined ? undefined : p.max_fix_age_seconds * 1000,
    maxAccuracy: p.max_accuracy_m,
    regionTable: p.region_table === false ? undefined : (p.region_table ?? 'builtin'),
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

function folded(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? foldPlaceName(v) : undefined;
}

/**
 * A place name resolved against the place table (SPEC §5.1): three positional keys — country
 * (or union), first-level subdivision, city. A key the table resolved is its ISO code behind a
 * NUL marker (so no folded name equals it); one it did not is the folded name; `undefined` is a
 * level the name leaves out. `EU/Germany/Berlin`, `DE/Berlin` and `Germany` all start with `DE`.
 */
interface Canonical {
  keys: [string | undefined, string | undefined, string | undefined];
  /** The deepest table place the non-city levels resolve to (every level above it resolved too). */
  place: Place | undefined;
  /** Some named non-city level is not in the table (matched by name only). */
  unresolved: boolean;
}

const code = (p: Place) => `\u0000${p.code}`;

function canonical(region: unknown, state: unknown, city: unknown): Canonical | undefined {
  const r = folded(region);
  if (r === undefined) return undefined;
  const s = folded(state);
  const c = folded(city);
  const R = findRegion(region as string);
  if (!R) return { keys: [r, s, c], place: undefined, unresolved: true };
  if (s === undefined) return { keys: [code(R), undefined, c], place: R, unresolved: false };
  const S = findState(R, state as string);
  if (!S) return { keys: [code(R), s, c], place: R, unresolved: true };
  // A union's "state" is a member country: the country takes the first level, the state level is
  // left open (EU/Germany/Berlin → DE, —, berlin).
  if (R.kind === 'union') return { keys: [code(S), undefined, c], place: S, unresolved: false };
  return { keys: [code(R), code(S), c], place: S, unresolved: false };
}

/** One compiled allow entry. */
interface CompiledEntry {
  /** The entry as the policy spelled it. */
  entry: GeographicRegion;
  canon: Canonical;
  /** The entry names a state or city. */
  needsState: boolean;
}

function compileRegions(entries: GeoPolicy['allow']): CompiledEntry[] | undefined {
  if (!entries || entries.length === 0) return undefined;
  return entries.map((e) => {
    const entry: GeographicRegion = { region: e.region };
    if (e.state !== undefined) entry.state = e.state;
    if (e.city !== undefined) entry.city = e.city;
    return { entry, canon: canonical(e.region, e.state, e.city)!, needsState: e.state !== undefined };
  });
}

/** Whether the entry's names cover the claim's: every level the entry names is equal (unions contain their members). */
function namesMatch(e: Canonical, claim: Canonical): boolean {
  const [e0, e1, e2] = e.keys;
  const union = e.place?.kind === 'union' && e1 === undefined && e2 === undefined;
  if (union) {
    if (claim.keys[0] === e0) return true;
    return (
      claim.place !== undefined &&
      claim.place.kind !== 'union' &&
      placeLineage(claim.place).includes(e.place!.code)
    );
  }
  return (
    claim.keys[0] === e0 &&
    (e1 === undefined || claim.keys[1] === e1) &&
    (e2 === undefined || claim.keys[2] === e2)
  );
}

type Point = { lat: number; lon: number; accuracy: number };

function usablePoint(pt: GeoObservation['point']): Point | undefined | false {
  if (pt === undefined) return undefined;
  if (!Number.isFinite(pt.lat) || !Number.isFinite(pt.lon) || Math.abs(pt.lat) > 90 || Math.abs(pt.lon) > 180)
    return false;
  if (pt.accuracy !== undefined && !(Number.isFinite(pt.accuracy) && pt.accuracy >= 0)) return false;
  return { lat: pt.lat, lon: pt.lon, accuracy: pt.accuracy ?? 0 };
}

type AllowOutcome =
  | { ok: true; match: GeoMatch }
  | { ok: false; unplaced: boolean; claim: Canonical | undefined };

/**
 * The allow decision. With a point, an entry whose levels the table resolves matches when the
 * point's whole accuracy circle lies inside the place's boundary (the claim's names do not count;
 * `region_mismatch` polices them); its city, for which the table has no polygon, is compared by
 * name and the match says so. An entry the table cannot resolve matches by name only when it
 * names just a region; one that names a state or city cannot be decided (fails closed). Without
 * a point the claim's names decide, resolved through the table (`DE` = `Germany` = `EU/Germany`).
 */
function matchAllow(entries: CompiledEntry[], obs: GeoObservation, pt: Point | undefined): AllowOutcome {
  const r = obs.region;
  const claim = canonical(r?.region, r?.state, r?.city);
  const inside = new Map<string, boolean>();
  let unplaced = false;
  for (const { entry, canon, needsState } of entries) {
    if (pt === undefined || canon.place === undefined || canon.unresolved) {
      if (pt !== undefined && needsState) {
        unplaced = true;
        continue;
      }
      if (claim && namesMatch(canon, claim))
        return { ok: true, match: { matched: entry, matched_by: 'name' } };
      continue;
    }
    const place = canon.place;
    let isIn = inside.get(place.code);
    if (isIn === undefined) {
      isIn = placeContainsCircle(place, pt.lat, pt.lon, pt.accuracy);
      inside.set(place.code, isIn);
    }
    if (!isIn) continue;
    const city = canon.keys[2];
    if (city !== undefined && claim?.keys[2] !== city) continue;
    const match: GeoMatch = { matched: entry, matched_by: 'boundary', place: place.code };
    if (city !== undefined) match.city_matched_by = 'name';
    return { ok: true, match };
  }
  if (pt !== undefined && !unplaced && entries.some((e) => e.needsState)) {
    // The table cannot place the point at the level the policy requires: no country there, or
    // no subdivision in a country the table has subdivisions for.
    const at = placeAt(pt.lat, pt.lon);
    if (!at.country || (!at.subdivision && hasSubdivisions(at.country.code))) unplaced = true;
  }
  return { ok: false, unplaced, claim };
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
 * Region consistency against an operator's box table (`region_table`): does the claimed place
 * contradict the reported point according to `table`? Only what the table knows is concluded:
 * - the point lies in no box → nothing (`false`);
 * - no box containing the point is compatible with the claim (some level both name differs) →
 *   contradiction;
 * - the claim names a city the table has boxes for (with compatible region/state), and none of
 *   them contains the point → contradiction.
 */
function boxContradiction(
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

/**
 * Region consistency against the place table: the claim's deepest resolved place (country or
 * subdivision; a city has no polygon) contradicts the point when the point's whole accuracy
 * circle lies outside it. Names the table does not know conclude nothing.
 */
function tableContradiction(region: GeoObservation['region'], pt: Point): boolean {
  const claim = canonical(region?.region, region?.state, region?.city);
  if (!claim?.place) return false;
  return placeExcludesCircle(claim.place, pt.lat, pt.lon, pt.accuracy);
}

const DEFAULT_MIN_QUALITY_RANK = LOCATION_QUALITIES.indexOf(DEFAULT_MIN_QUALITY);

function qualityRank(q: unknown): number {
  return typeof q === 'string' ? (LOCATION_QUALITIES as readonly string[]).indexOf(q) : -1;
}

/**
 * Evaluate one policy against an observation (SPEC §5.3). Checks, in order: region consistency (a
 * claimed place whose boundary the point's whole accuracy circle lies outside, according to the
 * place table or the policy's `region_table`: `region_mismatch`), region hierarchy (with a point,
 * the whole accuracy circle inside the allowed place's boundary: `region`, or `place_unknown` when
 * the table cannot place the point at the level the policy requires), fences, maximum accuracy,
 * minimum quality (default {@link DEFAULT_MIN_QUALITY}), a fix dated in the future beyond the clock
 * skew (`fix_in_future`, whatever the policy), maximum fix age. The first failing check is
 * reported. The policy is validated and compiled on first use and cached per policy object.
 * @public
 */
export function evaluateGeoPolicy(policy: GeoPolicy, observation: GeoObservation): GeoDecision {
  const c = getCompiled(policy, true);
  const usable = usablePoint(observation.point);
  const pt = usable === false ? undefined : usable;
  if (c.regionTable !== undefined && observation.region !== undefined && pt !== undefined) {
    const contradicts =
      c.regionTable === 'builtin'
        ? tableContradiction(observation.region, pt)
        : boxContradiction(c.regionTable, observation.region, pt.lat, pt.lon);
    if (contradicts) {
      const table = c.regionTable;
      return {
        allowed: false,
        check: 'region_mismatch',
        reason: 'Claimed region contradicts the reported coordinates',
        expected: {
          places_at_point:
            table === 'builtin'
              ? [labelPoint(pt.lat, pt.lon)].filter((x) => x !== undefined)
              : table.filter((e) => boxContains(e.box, pt.lat, pt.lon)).map((e) => e.place),
        },
        received: {
          region: observation.region,
          point: { lat: pt.lat, lon: pt.lon, accuracy: pt.accuracy },
        },
      };
    }
  }
  let matched: GeoMatch | undefined;
  if (c.entries) {
    // A point that is present but unusable (non-finite, negative accuracy) fails closed.
    const outcome: AllowOutcome =
      usable === false
        ? { ok: false, unplaced: false, claim: undefined }
        : matchAllow(c.entries, observation, pt);
    if (!outcome.ok) {
      return {
        allowed: false,
        check: outcome.unplaced ? 'place_unknown' : 'region',
        reason: outcome.unplaced
          ? 'The place table cannot place the location at the level the policy requires'
          : pt
            ? 'Location (with its accuracy circle) is not inside an allowed region'
            : 'Location is not in an allowed region',
        expected: policy.allow,
        received: pt
          ? {
              region: observation.region ?? null,
              point: pt,
              place_at_point: labelPoint(pt.lat, pt.lon) ?? null,
            }
          : (observation.region ?? null),
      };
    }
    matched = outcome.match;
  }
  if (c.polygons) {
    const hit =
      pt === undefined ? -1 : c.polygons.findIndex((poly) => circleInside(poly, pt.lon, pt.lat, pt.accuracy));
    if (hit < 0) {
      return {
        allowed: false,
        check: 'fence',
        reason: observation.point
          ? 'Location (with its accuracy circle) is not inside an allowed fence'
          : 'No precise location',
        expected: { fences: c.polygons.length },
        received: observation.point ?? null,
      };
    }
    matched = { ...matched, fence: c.polygonFence[hit] as number };
  }
  if (c.maxAccuracy !== undefined) {
    const acc = observation.point?.accuracy;
    if (usable === false || acc === undefined || !(acc <= c.maxAccuracy)) {
      return {
        allowed: false,
        check: 'accuracy',
        reason: observation.point ? 'Location accuracy is worse than the maximum' : 'No location accuracy',
        expected: { max_accuracy_m: c.maxAccuracy },
        received: { accuracy: acc ?? null },
      };
    }
  }
  {
    const rank = qualityRank(observation.quality);
    const failed =
      c.minQualityRank !== undefined ? rank < 0 || rank > c.minQualityRank : rank > DEFAULT_MIN_QUALITY_RANK;
    if (failed) {
      return {
        allowed: false,
        check: 'quality',
        reason: 'Location quality below the required minimum',
        expected: { min_quality: policy.min_quality ?? DEFAULT_MIN_QUALITY },
        received: { quality: observation.quality ?? null },
      };
    }
  }
  const now = (observation.now ?? new Date()).getTime();
  const fix = observation.fixTime === undefined ? Number.NaN : new Date(observation.fixTime).getTime();
  const skewMs = (observation.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS) * 1000;
  if (Number.isFinite(fix) && fix - now > skewMs) {
    return {
      allowed: false,
      check: 'fix_in_future',
      reason: 'Location fix is dated in the future beyond the clock skew',
      expected: { not_after: new Date(now + skewMs).toISOString(), clock_skew_seconds: skewMs / 1000 },
      received: { fix_time: observation.fixTime ?? null },
    };
  }
  if (c.maxFixAgeMs !== undefined) {
    if (!Number.isFinite(fix) || now - fix > c.maxFixAgeMs) {
      return {
        allowed: false,
        check: 'fix_age',
        reason: Number.isFinite(fix) ? 'Location fix is too old' : 'No fix time',
        expected: { max_fix_age_seconds: policy.max_fix_age_seconds },
        received: { fix_time: observation.fixTime ?? null },
      };
    }
  }
  return matched ? { allowed: true, ...matched } : { allowed: true };
}
