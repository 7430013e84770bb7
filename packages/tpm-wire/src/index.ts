/**
 * Pure TypeScript TPM 2.0 structures: TPM2B_PUBLIC, Names, TPMS_ATTEST, TPMT_SIGNATURE, software MakeCredential.
 *
 * @packageDocumentation
 */
export {};
