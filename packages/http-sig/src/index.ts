/**
 * RFC 9421 HTTP Message Signatures profile and RFC 9530 Content-Digest, with async (TPM-backed) signers.
 *
 * Sign with {@link signRequest} (software keys via {@link createSigner}, or any {@link Signer} such as a TPM),
 * verify with {@link verifyRequest}; every failure is an {@link HttpSigError} with a stable `code`.
 *
 * @packageDocumentation
 * @module @geofence/http-sig
 */
export { type IncomingOptions, messageFromFetchRequest, messageFromIncoming } from './adapters.js';
export { ALGORITHMS, type AlgorithmInfo, isSignatureAlgorithm } from './algorithms.js';
export { type ComponentId, DERIVED_COMPONENTS, parseComponent } from './components.js';
export { contentDigest, type DigestAlgorithm, verifyContentDigest } from './digest.js';
export { isLowS, toLowS } from './ecdsa-low-s.js';
export { HttpSigError, type HttpSigErrorCode, isHttpSigError } from './errors.js';
export { KNOWN_STRUCTURED_FIELDS, type StructuredFieldType } from './fields.js';
export { encodeQueryParamComponent } from './query-param.js';
export { type SignatureHeaders, type SignRequestOptions, signRequest } from './sign.js';
export { createSignatureBase } from './signature-base.js';
export {
  parseSignatureInput,
  type SignatureInputMember,
  type SignatureParams,
} from './signature-input.js';
export { type CreateSignerOptions, createSigner } from './signer.js';
export type {
  HeaderFields,
  HttpMessage,
  PinnedVerificationKey,
  SignatureAlgorithm,
  Signer,
  VerificationKeyInput,
} from './types.js';
export {
  type SignatureParamName,
  type VerifiedSignature,
  type VerifyRequestOptions,
  verifyRequest,
} from './verify.js';
