/**
 * The shipped reverse-geocoding table (SPEC §5.1) lives in `@geofence/protocol`; the verifier checks
 * claimed places against coordinates with it; re-exported here so the agent keeps its public names
 * and both sides use one table.
 */
export { BUILTIN_REGION_TABLE, lookupRegion, type RegionBox } from '@geofence/protocol';
