/**
 * Stable error codes of {@link TpmWireError}.
 *
 * @remarks
 * Parser codes: `truncated` (input ends inside a structure), `trailing_data` (bytes after the structure),
 * `oversized` (a size field exceeds the TPM 2.0 maximum for that type, or a TPM2B size disagrees with
 * its content), `malformed` (an invalid value such as a bad boolean or an algorithm in the wrong place),
 * `unsupported_algorithm` (a well-formed algorithm id this library does not handle).
 * Key codes: `invalid_key` (a public area that is not a usable public key).
 * Verification codes: `bad_magic`, `wrong_type`, `nonce_mismatch`, `name_mismatch`, `attribute_mismatch`,
 * `pcr_selection_mismatch`, `pcr_values_missing`, `pcr_digest_mismatch`, `bad_signature`.
 * Credential codes: `invalid_ek`, `invalid_argument`; `invalid_ak` when the attestation key is not a restricted signing key.
 *
 * @public
 */
export type TpmWireErrorCode =
  | 'truncated'
  | 'trailing_data'
  | 'oversized'
  | 'malformed'
  | 'unsupported_algorithm'
  | 'invalid_key'
  | 'invalid_argument'
  | 'invalid_ek'
  | 'invalid_ak'
  | 'bad_magic'
  | 'wrong_type'
  | 'nonce_mismatch'
  | 'name_mismatch'
  | 'attribute_mismatch'
  | 'pcr_selection_mismatch'
  | 'pcr_values_missing'
  | 'pcr_digest_mismatch'
  | 'bad_signature';

/**
 * The only error type thrown by this package's parsers and verifiers.
 *
 * @example
 * ```ts
 * try { parsePublic(bytes); } catch (e) { if (e instanceof TpmWireError && e.code === 'truncated') ... }
 * ```
 * @public
 */
export class TpmWireError extends Error {
  /** Stable machine-readable code naming the failed check. */
  readonly code: TpmWireErrorCode;

  /**
   * @param code - stable error code
   * @param message - human readable detail (never contains secrets)
   * @param options - optional `cause` (the underlying error)
   */
  constructor(code: TpmWireErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TpmWireError';
    this.code = code;
  }
}
