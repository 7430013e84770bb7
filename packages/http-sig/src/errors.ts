/**
 * Stable machine-readable reasons for a failed signing or verification.
 *
 * - `missing_signature`: no `Signature`/`Signature-Input` (or no signature with the wanted label/tag).
 * - `malformed`: a header, parameter or component identifier is not valid RFC 9421 / RFC 8941 syntax.
 * - `unknown_key`: `keyLookup` found no key for the `keyid`.
 * - `alg_mismatch`: the `alg` parameter, the key type and/or the expected algorithm disagree.
 * - `bad_signature`: the cryptographic check failed.
 * - `expired`: `expires` has passed, or `created` is older than `maxAgeSeconds` (both with clock skew).
 * - `not_yet_valid`: `created` lies in the future by more than the clock skew.
 * - `missing_component`: a covered or required component is absent from the message.
 * - `missing_param`: a required signature parameter is absent.
 * - `nonce_rejected`: the `nonce` callback refused the nonce (replay or unknown nonce).
 * - `tag_mismatch`: the signature's `tag` is not the expected one.
 * - `digest_mismatch`: a `Content-Digest` value does not match the body.
 * - `unsupported`: a valid but unsupported algorithm, component or parameter.
 *
 * @public
 */
export type HttpSigErrorCode =
  | 'missing_signature'
  | 'malformed'
  | 'unknown_key'
  | 'alg_mismatch'
  | 'bad_signature'
  | 'expired'
  | 'not_yet_valid'
  | 'missing_component'
  | 'missing_param'
  | 'nonce_rejected'
  | 'tag_mismatch'
  | 'digest_mismatch'
  | 'unsupported';

/**
 * The only error type thrown by this package for bad input, keys or signatures.
 * Branch on {@link HttpSigError.code}; `message` is for humans and may change.
 *
 * @public
 */
export class HttpSigError extends Error {
  /** Stable reason, safe to map to HTTP statuses and metrics. */
  readonly code: HttpSigErrorCode;

  /**
   * @param code - stable reason
   * @param message - human-readable detail (never contains key material)
   * @param options - standard `ErrorOptions` (`cause`)
   */
  constructor(code: HttpSigErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'HttpSigError';
    this.code = code;
  }
}

/**
 * Type guard for {@link HttpSigError}, optionally for one code.
 *
 * @public
 */
export function isHttpSigError(err: unknown, code?: HttpSigErrorCode): err is HttpSigError {
  return err instanceof HttpSigError && (code === undefined || err.code === code);
}
