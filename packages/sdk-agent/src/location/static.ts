import { geographicRegionSchema } from '@geofence/protocol';
import type { LocationObservation, LocationProvider } from './types.js';

/** Options of {@link staticLocation}: the configured place (`GEOGRAPHIC_REGION/STATE/CITY`). */
export interface StaticLocationOptions {
  /** Region (e.g. `US`, `EU`). */
  region: string;
  /** State (e.g. `California`). */
  state?: string;
  /** City (e.g. `Santa Clara`). */
  city?: string;
  /** Optional latitude of the configured site. */
  lat?: number;
  /** Optional longitude of the configured site. */
  lon?: number;
  /** Radius (metres) within which the configured lat/lon is known to be right. */
  accuracy?: number;
}

/**
 * A location from configuration, quality `static` (SPEC §5.1). With `lat`/`lon` the payload also
 * carries a precise reading of quality `static`.
 *
 * @example
 * ```ts
 * const location = staticLocation({ region: 'US', state: 'California', city: 'Santa Clara' });
 * ```
 */
export function staticLocation(options: StaticLocationOptions): LocationProvider {
  const place = geographicRegionSchema.parse({
    region: options.region,
    ...(options.state !== undefined ? { state: options.state } : {}),
    ...(options.city !== undefined ? { city: options.city } : {}),
  });
  if (!place.region) throw new TypeError('staticLocation: region must not be empty');
  const hasLat = options.lat !== undefined;
  if (hasLat !== (options.lon !== undefined))
    throw new TypeError('staticLocation: give both lat and lon or neither');
  if (hasLat && !(Math.abs(options.lat!) <= 90 && Math.abs(options.lon!) <= 180)) {
    throw new RangeError('staticLocation: lat/lon out of range');
  }
  if (
    options.accuracy !== undefined &&
    !(hasLat && options.accuracy >= 0 && Number.isFinite(options.accuracy))
  ) {
    throw new RangeError('staticLocation: accuracy needs lat/lon and must be a finite non-negative number');
  }
  const observation: LocationObservation = Object.freeze({
    geographicRegion: Object.freeze(place),
    quality: 'static',
    locationType: 'geographic-region',
    ...(hasLat
      ? {
          reading: Object.freeze({
            lat: options.lat!,
            lon: options.lon!,
            ...(options.accuracy !== undefined ? { accuracy: options.accuracy } : {}),
            quality: 'static' as const,
          }),
        }
      : {}),
  });
  return {
    kind: 'static',
    current: async () => observation,
  };
}
