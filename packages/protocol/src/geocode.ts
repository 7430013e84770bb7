/**
 * Reverse geocoding (SPEC §5.1). The shipped place table (`./places/table.ts`: country and
 * first-level subdivision boundaries) is the one implementation: the agent derives the place of a
 * GNSS fix from it, the verifier checks a claimed place against the reported coordinates with it
 * (`evaluateGeoPolicy`) and uses it as the default reverse geocoder of location attestation
 * (`appraiseLocationBundle`). Operators can add their own boxes (the agent's `regionMapping`, a
 * policy's `region_table`), searched with {@link lookupRegion}.
 */
import { labelPoint } from './places/table.js';
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

/** Whether `box` contains the point (edges included). */
export function boxContains(box: RegionBox['box'], lat: number, lon: number): boolean {
  return lon >= box[0] && lat >= box[1] && lon <= box[2] && lat <= box[3];
}

/**
 * First entry of `tables` (operator box tables, searched in order) whose box contains the point,
 * or `undefined`.
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
 * The default reverse geocoder: the place table's label of the point — `{region: <ISO 3166-1
 * alpha-2>, state?: <first-level subdivision name>}` (`{region: 'US', state: 'California'}`,
 * `{region: 'FR', state: 'Grand Est'}`), no city (the table has no city polygons); `undefined`
 * where the table cannot place the point (open sea).
 * @public
 */
export function builtinReverseGeocode(lat: number, lon: number): GeographicRegion | undefined {
  return labelPoint(lat, lon);
}
