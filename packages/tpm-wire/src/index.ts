/**
 * Pure TypeScript TPM 2.0 structures: TPM2B_PUBLIC, Names, TPMS_ATTEST, TPMT_SIGNATURE, software
 * MakeCredential. No native code; all cryptography uses `node:crypto`.
 *
 * @packageDocumentation
 * @module @geofence/tpm-wire
 */

export { type ClockInfo, marshalAttest, parseAttest, type TpmsAttest } from './attest.js';
export { decodeObjectAttributes, encodeObjectAttributes, type ObjectAttributes } from './attributes.js';
export { type HashAlg, hashAlgId, hashSize, TPM_GENERATED_VALUE } from './constants.js';
export { type MadeCredential, makeCredential } from './credential.js';
export { TpmWireError, type TpmWireErrorCode } from './errors.js';
export { kdfa, kdfe } from './kdf.js';
export {
  keyIdFromSpki,
  keyIdOfPublic,
  objectName,
  objectNameHex,
  publicToJwk,
  publicToKeyObject,
  publicToPem,
  publicToSpkiDer,
} from './keys.js';
export { type PcrSelection, type PcrValues, pcrDigest } from './pcr.js';
export {
  type AsymScheme,
  type EccCurve,
  type EccPublicParams,
  type EccSchemeName,
  type KdfName,
  type KdfScheme,
  marshalPublic,
  marshalTpmtPublic,
  parsePublic,
  parseTpmtPublic,
  type RsaPublicParams,
  type RsaSchemeName,
  type SymAlgorithm,
  type SymDefObject,
  type SymMode,
  type TpmPublic,
} from './public.js';
export { marshalSignature, parseSignature, type TpmtSignature, verifyTpmSignature } from './signature.js';
export {
  type AttestationInput,
  type VerifiedCertify,
  type VerifiedQuote,
  verifyCertify,
  verifyQuote,
} from './verify.js';
