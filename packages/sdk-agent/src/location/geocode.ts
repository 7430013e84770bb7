/**
 * The shipped place table (SPEC §5.1: country and first-level subdivision boundaries) lives in
 * `@geofence/protocol`; the verifier checks claimed places against coordinates with it; re-exported here
 * so the agent and the verifier use one table.
 */
export { builtinReverseGeocode, labelPoint, lookupRegion, type RegionBox } from '@geofence/protocol';
