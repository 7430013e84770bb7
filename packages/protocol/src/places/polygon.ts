/**
 * Polygon containment with the conservative accuracy-circle rule (SPEC §5.3). One
 * implementation for operator fences and for the country/subdivision boundaries of the place
 * table: a point with accuracy `r` metres is inside only when its whole accuracy circle is.
 */

import { buildPolygonGrid, GRID_INSIDE, GRID_OUTSIDE, type PolygonGrid } from './polygon-grid.js';

type Ring = ReadonlyArray<readonly number[]>;

/** A polygon prepared for repeated containment tests (bbox precomputed). */
export interface CompiledPolygon {
  /** Outer ring first, then holes; positions are `[longitude, latitude]`. */
  rings: Ring[];
  /** `[minLon, minLat, maxLon, maxLat]` of the outer ring. */
  bbox: [number, number, number, number];
}

/**
 * Point in polygon with holes, by the even-odd rule over all rings (the outer ring and its holes);
 * a point exactly on an edge is `onEdge`. The same planar longitude/latitude edges and boundary
 * semantics as `@turf/boolean-point-in-polygon`, without making the agent install turf.
 */
function inRings(rings: readonly Ring[], x: number, y: number, onEdge: boolean): boolean {
  let inside = false;
  for (const r of rings) {
    for (let i = 0, j = r.length - 1; i < r.length; j = i++) {
      const xi = r[i]![0]!;
      const yi = r[i]![1]!;
      const xj = r[j]![0]!;
      const yj = r[j]![1]!;
      const cross = (x - xi) * (yj - yi) - (y - yi) * (xj - xi);
      if (
        cross === 0 &&
        x >= Math.min(xi, xj) &&
        x <= Math.max(xi, xj) &&
        y >= Math.min(yi, yj) &&
        y <= Math.max(yi, yj)
      ) {
        return onEdge;
      }
      if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
    }
  }
  return inside;
}

/** Where a polygon keeps its grid: built on first containment test, `null` when it has none. */
const GRID: unique symbol = Symbol('polygon-grid');
interface Indexed extends CompiledPolygon {
  [GRID]?: PolygonGrid | null;
}

/**
 * The polygon's grid (polygon-grid.ts), built on first use and kept on the polygon object itself
 * (non-enumerable, so it never shows in comparisons or JSON); none for small polygons or frozen
 * objects a caller built by hand.
 */
function gridOf(poly: CompiledPolygon): PolygonGrid | undefined {
  const p = poly as Indexed;
  let g = p[GRID];
  if (g === undefined) {
    g = buildPolygonGrid(poly.rings, poly.bbox) ?? null;
    if (!Object.isExtensible(p)) return g ?? undefined;
    Object.defineProperty(p, GRID, { value: g, enumerable: false });
  }
  return g ?? undefined;
}

/**
 * Scales below this many metres per degree of longitude (within ≈0.6° of a pole) make the grid's
 * margin too thin to outweigh rounding: the exact scans decide there.
 */
const MIN_GRID_KX = 1000;

/**
 * Prepares Polygon coordinate arrays (outer ring first, then holes) for {@link circleInside}.
 * Edges are straight lines in longitude/latitude, as in `@turf/*`.
 */
export function compilePolygonList(
  polygons: ReadonlyArray<ReadonlyArray<ReadonlyArray<readonly number[]>>>,
): CompiledPolygon[] {
  const out: CompiledPolygon[] = [];
  for (const rings of polygons) {
    let minX = Number.POSITIVE_INFINITY;
    let minY = Number.POSITIVE_INFINITY;
    let maxX = Number.NEGATIVE_INFINITY;
    let maxY = Number.NEGATIVE_INFINITY;
    for (const p of rings[0] ?? []) {
      const x = p[0]!;
      const y = p[1]!;
      if (x < minX) minX = x;
      if (x > maxX) maxX = x;
      if (y < minY) minY = y;
      if (y > maxY) maxY = y;
    }
    out.push({
      rings: rings as unknown as Ring[],
      bbox: [minX, minY, maxX, maxY],
    });
  }
  return out;
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
 * Whether the point lies in the polygon, boundary included. Used where the question is "which
 * area is this point in" (labelling, contradiction), not "is it certainly inside" (policy).
 */
export function pointInside(poly: CompiledPolygon, lon: number, lat: number): boolean {
  return pointInsideWith(poly, lon, lat, true);
}

function pointInsideWith(poly: CompiledPolygon, lon: number, lat: number, indexed: boolean): boolean {
  const [minX, minY, maxX, maxY] = poly.bbox;
  if (lon < minX || lon > maxX || lat < minY || lat > maxY) return false;
  const known = indexed ? gridOf(poly)?.classify(lon, lat, lon, lat) : undefined;
  if (known === GRID_INSIDE) return true;
  if (known === GRID_OUTSIDE) return false;
  return inRings(poly.rings, lon, lat, true);
}

/**
 * Accuracy-circle rule: the point lies strictly inside the polygon (a point on the border is not
 * inside) and no edge of any ring (outer or hole) is closer than `accuracy` metres. Distances use
 * a local plane around the point with conservative scales, consistent with the planar
 * longitude/latitude edges `@turf/boolean-point-in-polygon` uses.
 */
export function circleInside(poly: CompiledPolygon, lon: number, lat: number, accuracy: number): boolean {
  return circleInsideWith(poly, lon, lat, accuracy, true);
}

function circleInsideWith(
  poly: CompiledPolygon,
  lon: number,
  lat: number,
  accuracy: number,
  indexed: boolean,
): boolean {
  const [minX, minY, maxX, maxY] = poly.bbox;
  if (lon <= minX || lon >= maxX || lat <= minY || lat >= maxY) return false;
  // Built on the first test that gets past the bbox check.
  const grid = indexed ? gridOf(poly) : undefined;
  if (accuracy <= 0) {
    const known = grid?.classify(lon, lat, lon, lat);
    if (known === GRID_INSIDE) return true;
    if (known === GRID_OUTSIDE) return false;
    return inRings(poly.rings, lon, lat, false);
  }
  const dLat = accuracy / M_PER_DEG_LAT;
  const worstLat = Math.min(90, Math.abs(lat) + dLat);
  const kx = M_PER_DEG_LON_AT_EQUATOR * Math.cos((worstLat * Math.PI) / 180);
  const ky = M_PER_DEG_LAT;
  // The grid answers the two scans (point in rings, no edge within the circle) when the circle's
  // box touches only edge-free cells; the O(1) checks below still run as they always did.
  let scan = true;
  if (grid !== undefined && kx >= MIN_GRID_KX) {
    const rx = accuracy / kx;
    const known = grid.classify(lon - rx, lat - dLat, lon + rx, lat + dLat);
    if (known === GRID_OUTSIDE) return false;
    if (known === GRID_INSIDE) scan = false;
  }
  if (scan && !inRings(poly.rings, lon, lat, false)) return false;
  // The circle reaches beyond the bbox: cannot be inside.
  if ((lat - minY) * ky < accuracy || (maxY - lat) * ky < accuracy) return false;
  if (kx <= 0) return false;
  if ((lon - minX) * kx < accuracy || (maxX - lon) * kx < accuracy) return false;
  if (!scan) return true;
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

/**
 * Whether the whole accuracy circle lies outside the polygon: the point is not in it (boundary
 * included) and no edge of any ring is within `accuracy` metres. The same conservative scales as
 * {@link circleInside} (distances never overestimated), so a circle is called outside only when
 * it certainly is. Used to decide that a claimed place contradicts the reported point.
 */
export function circleOutside(poly: CompiledPolygon, lon: number, lat: number, accuracy: number): boolean {
  return circleOutsideWith(poly, lon, lat, accuracy, true);
}

function circleOutsideWith(
  poly: CompiledPolygon,
  lon: number,
  lat: number,
  accuracy: number,
  indexed: boolean,
): boolean {
  const [minX, minY, maxX, maxY] = poly.bbox;
  const a = accuracy > 0 ? accuracy : 0;
  const dLat = a / M_PER_DEG_LAT;
  const worstLat = Math.min(90, Math.abs(lat) + dLat);
  const kx = M_PER_DEG_LON_AT_EQUATOR * Math.cos((worstLat * Math.PI) / 180);
  // Farther than the circle from the bbox: certainly outside (kx ≤ 0 near a pole: no shortcut).
  if (kx > 0) {
    const dx = lon < minX ? (minX - lon) * kx : lon > maxX ? (lon - maxX) * kx : 0;
    const dy = lat < minY ? (minY - lat) * M_PER_DEG_LAT : lat > maxY ? (lat - maxY) * M_PER_DEG_LAT : 0;
    if (dx * dx + dy * dy > a * a) return true;
  }
  // The grid answers both scans when the circle's box touches only edge-free cells of one side.
  const grid = indexed ? gridOf(poly) : undefined;
  if (grid !== undefined && (a === 0 || kx >= MIN_GRID_KX)) {
    const rx = a === 0 ? 0 : a / kx;
    const known = grid.classify(lon - rx, lat - dLat, lon + rx, lat + dLat);
    if (known === GRID_INSIDE) return false;
    if (known === GRID_OUTSIDE) return true;
  }
  if (inRings(poly.rings, lon, lat, true)) return false;
  if (a === 0) return true;
  if (kx <= 0) return false;
  const acc2 = a * a;
  for (const r of poly.rings) {
    for (let i = 1; i < r.length; i++) {
      const p = r[i - 1]!;
      const q = r[i]!;
      const d2 = segDist2(
        (p[0]! - lon) * kx,
        (p[1]! - lat) * M_PER_DEG_LAT,
        (q[0]! - lon) * kx,
        (q[1]! - lat) * M_PER_DEG_LAT,
      );
      if (d2 <= acc2) return false;
    }
  }
  return true;
}

/**
 * The polygon's grid, for the property test to check that the grid really answers. Not part of
 * the package API.
 * @internal
 */
export const gridForTests = gridOf;

/**
 * The three containment tests without the grid (the edge scans alone), so the property test can
 * compare the grid's answers with the scans'. Not part of the package API.
 * @internal
 */
export const scanOnly = {
  pointInside: (poly: CompiledPolygon, lon: number, lat: number): boolean =>
    pointInsideWith(poly, lon, lat, false),
  circleInside: (poly: CompiledPolygon, lon: number, lat: number, accuracy: number): boolean =>
    circleInsideWith(poly, lon, lat, accuracy, false),
  circleOutside: (poly: CompiledPolygon, lon: number, lat: number, accuracy: number): boolean =>
    circleOutsideWith(poly, lon, lat, accuracy, false),
};
