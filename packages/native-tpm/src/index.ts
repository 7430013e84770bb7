/**
 * TPM 2.0 from Node.js: an N-API addon over tpm2-tss ESAPI, plus a swtpm helper for development and tests.
 *
 * @packageDocumentation
 */
export {};
