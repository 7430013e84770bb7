/**
 * RFC 9421 HTTP Message Signatures profile and RFC 9530 Content-Digest, with async (TPM-backed) signers.
 *
 * @packageDocumentation
 */
export {};
