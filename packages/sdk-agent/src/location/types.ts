import type { GeographicRegion, LocationQuality, LocationReading } from '@geofence/protocol';
import { AgentError } from '../errors.js';

/** Identity of the location sensor a reading came from (gpsd DEVICE report fields). */
export interface SensorIdentity {
  /** Sensor kind. */
  type: 'gnss';
  /** Device path as gpsd reports it (e.g. `/dev/ttyACM0`). */
  path: string;
  /** gpsd driver name (e.g. `u-blox`, `NMEA0183`). */
  driver?: string;
  /** Receiver model/firmware string(s) when the receiver reports them. */
  subtype?: string;
  /** Second receiver identity string (gpsd `subtype1`, often the firmware/protocol version). */
  subtype1?: string;
}

/**
 * One location observation: the hierarchical place that goes into the payload's
 * `geographic_region` and the `Workload-Geo-ID` header, plus an optional precise reading.
 */
export interface LocationObservation {
  /** `{region, state?, city?}` of the payload and header. */
  geographicRegion: GeographicRegion;
  /** Precise reading (payload `location`), when the source has coordinates. */
  reading?: LocationReading;
  /** Quality of the source (SPEC §5.2). */
  quality: LocationQuality;
  /** `client_workload_location_type` of the header. */
  locationType: 'geographic-region' | 'precise';
  /** The sensor the reading came from (GNSS sources). */
  sensor?: SensorIdentity;
}

/** A source of location observations (static configuration, gpsd, …). */
export interface LocationProvider {
  /** Short name of the source kind, for logs and status. */
  readonly kind: string;
  /**
   * The current location. Rejects with {@link NoLocationError} when there is none that can be
   * trusted (no fix, stale fix, unmapped coordinates, unreachable daemon): a provider never invents one.
   */
  current(): Promise<LocationObservation>;
  /** Releases connections. */
  close?(): Promise<void>;
}

/** Stable codes of {@link NoLocationError}. */
export type NoLocationCode = 'no_fix' | 'stale_fix' | 'future_fix' | 'unmapped' | 'unreachable' | 'protocol';

/** There is no trustworthy location right now; nothing is sent that would claim one. */
export class NoLocationError extends AgentError<NoLocationCode> {
  constructor(code: NoLocationCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'NoLocationError';
  }
}
