/**
 * Stable codes of {@link TpmError}.
 *
 * - `tpm_error`: the TPM (or the TSS stack talking to it: TCTI, ESYS) returned a non-zero response
 *   code; see `rc` / `rcText`.
 * - `invalid_argument`: the input was rejected before reaching the TPM (truncated key blob,
 *   wrong digest length, handle outside the persistent range, ...).
 * - `closed`: the {@link Tpm} was closed (or never opened) before the command ran.
 * - `internal`: an unexpected failure inside the addon.
 *
 * @public
 */
export type TpmErrorCode = 'tpm_error' | 'invalid_argument' | 'closed' | 'internal';

/**
 * The error every `Tpm` method rejects with.
 *
 * @example
 * ```ts
 * try { await tpm.loadKey(blob); } catch (e) {
 *   if (e instanceof TpmError && e.code === 'tpm_error') console.error(e.command, e.rcText);
 * }
 * ```
 * @public
 */
export class TpmError extends Error {
  /** Stable machine-readable category. */
  readonly code: TpmErrorCode;
  /** TSS2 response code (0 when the failure did not come from the TSS/TPM). */
  readonly rc: number;
  /** `Tss2_RC_Decode(rc)`, e.g. `"tpm:handle(1):the handle is not correct for the use"`. */
  readonly rcText: string;
  /** The TPM command or TSS function that failed, e.g. `"TPM2_Sign"`. */
  readonly command: string;

  constructor(
    code: TpmErrorCode,
    message: string,
    details: { rc?: number; rcText?: string; command?: string; cause?: unknown } = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'TpmError';
    this.code = code;
    this.rc = details.rc ?? 0;
    this.rcText = details.rcText ?? '';
    this.command = details.command ?? '';
  }
}

const KINDS: Record<string, TpmErrorCode> = {
  tpm: 'tpm_error',
  invalid_argument: 'invalid_argument',
  closed: 'closed',
  internal: 'internal',
};

/** Converts whatever the addon rejected with into a {@link TpmError}. */
export function toTpmError(err: unknown): TpmError {
  if (err instanceof TpmError) return err;
  if (err instanceof TypeError || err instanceof RangeError) {
    return new TpmError('invalid_argument', err.message, { cause: err });
  }
  if (err instanceof Error) {
    const e = err as Error & { rc?: number; rcText?: string; command?: string; kind?: string };
    const code = (e.kind && KINDS[e.kind]) || 'internal';
    const details: { rc?: number; rcText?: string; command?: string } = {};
    if (e.rc !== undefined) details.rc = e.rc;
    if (e.rcText !== undefined) details.rcText = e.rcText;
    if (e.command !== undefined) details.command = e.command;
    return new TpmError(code, e.message, details);
  }
  return new TpmError('internal', String(err));
}
