/**
 * The verifier storage interfaces attestation builds on (SPEC §10), re-exported under one roof.
 */

export type { NonceStore } from '../storage/nonce-store.js';
export type { AgentRecord, AgentRecordInput, Registry } from '../storage/registry.js';
export { expectationOf, RegistryError } from '../storage/registry.js';
