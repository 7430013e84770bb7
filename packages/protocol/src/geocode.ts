/**
 * The reverse-geocoding table the project ships (SPEC §5.1) and the lookups on it. One
 * implementation: the agent derives the place of a GNSS fix from it, the verifier checks a claimed
 * place against the reported coordinates with it (`evaluateGeoPolicy`) and uses it as the default
 * reverse geocoder of location attestation (`appraiseLocationBundle`).
 */
import type { GeographicRegion } from './protocol.js';

/**
 * A rectangular area and the place it maps to. `box` is `[minLon, minLat, maxLon, maxLat]` (WGS 84).
 * @public
 */
export interface RegionBox {
  /** Bounding box `[minLon, minLat, maxLon, maxLat]`. */
  box: readonly [number, number, number, number];
  /** The place a point inside the box is in. */
  place: GeographicRegion;
}

/**
 * The reverse-geocoding table shipped with the SDKs: coarse bounding boxes, most specific first.
 * Deliberately small — deployments configure their own mapping for their sites. State/country
 * boxes are inner approximations of the territories (a point near a border falls in none, so
 * nothing is concluded there); city boxes are generous (they include neighbouring towns), which
 * is why the verifier's consistency check never rejects a city only because a city box contains
 * the point (see `regionContradiction`). The verifier's polygon policy is the authority on fences.
 * @public
 */
export const BUILTIN_REGION_TABLE: readonly RegionBox[] = Object.freeze([
  {
    box: [-122.03, 37.32, -121.92, 37.42],
    place: { region: 'US', state: 'California', city: 'Santa Clara' },
  },
  { box: [-122.2, 37.12, -121.75, 37.45], place: { region: 'US', state: 'California', city: 'San Jose' } },
  { box: [-97.94, 30.1, -97.56, 30.52], place: { region: 'US', state: 'Texas', city: 'Austin' } },
  { box: [13.09, 52.34, 13.76, 52.67], place: { region: 'EU', state: 'Germany', city: 'Berlin' } },
  { box: [11.36, 48.06, 11.72, 48.25], place: { region: 'EU', state: 'Germany', city: 'Munich' } },
  // State / country level (inner boxes of the territories, so coverage errs on "unmapped").
  { box: [-123.5, 35.0, -118.0, 41.0], place: { region: 'US', state: 'California' } },
  { box: [-103.0, 28.0, -95.0, 34.0], place: { region: 'US', state: 'Texas' } },
  { box: [7.0, 48.0, 13.8, 53.5], place: { region: 'EU', state: 'Germany' } },
]);

/** Whether `box` contains the point (edges included). */
export function boxContains(box: RegionBox['box'], lat: number, lon: number): boolean {
  return lon >= box[0] && lat >= box[1] && lon <= box[2] && lat <= box[3];
}

/**
 * First entry of `tables` (searched in order) whose box contains the point, or `undefined`.
 * @public
 */
export function lookupRegion(
  lat: number,
  lon: number,
  ...tables: ReadonlyArray<readonly RegionBox[]>
): GeographicRegion | undefined {
  for (const table of tables) {
    for (const { box, place } of table) {
      if (boxContains(box, lat, lon)) return { ...place };
    }
  }
  return undefined;
}

/**
 * The default reverse geocoder: {@link lookupRegion} on {@link BUILTIN_REGION_TABLE}.
 * @public
 */
export function builtinReverseGeocode(lat: number, lon: number): GeographicRegion | undefined {
  return lookupRegion(lat, lon, BUILTIN_REGION_TABLE);
}
