import { HttpSigError } from './errors.js';

/** RFC 8941 §3.1.2 key (used for signature labels). */
const SF_KEY = /^[a-z*][a-z0-9_\-.*]*$/;
/** RFC 8941 §3.3.3 sf-string content: printable ASCII. */
const SF_STRING = /^[\x20-\x7e]*$/;

/** Throws `malformed` unless `label` is a valid dictionary key. */
export function assertLabel(label: string): void {
  if (!SF_KEY.test(label))
    throw new HttpSigError('malformed', `signature label ${JSON.stringify(label)} is invalid`);
}

/** Throws `malformed` unless `value` can be an sf-string. */
export function assertSfString(what: string, value: string): void {
  if (!SF_STRING.test(value)) throw new HttpSigError('malformed', `${what} must be printable ASCII`);
}

/** Seconds since the epoch from a `Date` or a number of seconds; rejects non-integers and out-of-range values. */
export function toUnixSeconds(what: string, value: number | Date): number {
  const seconds = value instanceof Date ? Math.floor(value.getTime() / 1000) : value;
  // RFC 8941 integers have at most 15 digits.
  if (!Number.isSafeInteger(seconds) || seconds < 0 || seconds > 999_999_999_999_999) {
    throw new HttpSigError('malformed', `${what} must be a non-negative integer number of seconds`);
  }
  return seconds;
}
