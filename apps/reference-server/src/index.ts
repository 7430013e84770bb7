/**
 * Reference collector, gateway and edge agent service composed from the @geofence SDKs; CLI `geofence`.
 *
 * @packageDocumentation
 */
export {};
