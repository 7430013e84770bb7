import type { SensorInfo } from '@geofence/protocol';
import type { SensorIdentity } from '../location/types.js';

/**
 * Maps a gpsd receiver identity (DEVICE report) to the enrolment `sensor` fields: type, model
 * (driver and subtype), serial (the device path — gpsd exposes no hardware serial), firmware.
 * @public
 */
export function sensorInfoFromIdentity(identity: SensorIdentity): SensorInfo {
  const model = [identity.driver, identity.subtype].filter((s): s is string => !!s).join(' ') || 'unknown';
  return {
    type: identity.type,
    model: model.slice(0, 256),
    serial: identity.path.slice(0, 256) || 'unknown',
    ...(identity.subtype1 ? { firmware: identity.subtype1.slice(0, 256) } : {}),
  };
}
