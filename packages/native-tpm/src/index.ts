/**
 * TPM 2.0 from Node.js: an N-API addon over tpm2-tss ESAPI, plus a swtpm helper for development and tests.
 *
 * - {@link Tpm}: open a TPM through any tpm2-tss TCTI and run commands (keys, signing, certify, quote,
 *   credential activation, PCRs, EK) asynchronously, one at a time per TPM, off the event loop.
 * - {@link tpmSigner}: an `@geofence/http-sig` signer backed by a TPM key.
 * - {@link startSwtpm}: a software TPM with EK certificates on free loopback ports.
 *
 * Importing this module has no side effects: the native addon is loaded on the first `Tpm.open`.
 *
 * @packageDocumentation
 * @module @geofence/native-tpm
 */
export { TpmError, type TpmErrorCode } from './errors.js';
export { type TpmSignatureAlgorithm, type TpmSigner, type TpmSignerOptions, tpmSigner } from './signer.js';
export { type SwtpmInstance, type SwtpmOptions, startSwtpm } from './swtpm.js';
export { type ActivateCredentialOptions, Tpm, type TpmOpenOptions } from './tpm.js';
export type {
  CertifyResult,
  EkAlg,
  KeyAlg,
  PcrBank,
  PcrSelection,
  PcrValues,
  QuoteResult,
  TpmCommandStats,
  TpmInfo,
  TpmKey,
} from './types.js';
