import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import {
  isProblem,
  labelPoint,
  metricsPayloadSchema,
  type PayloadSigner,
  problemTypeUri,
  signPayload,
  VALIDATION_TYPE_INFO,
  verifyPayloadSignature,
} from '@geofence/protocol';

// A software RSA-2048 key; an agent signs with its TPM-resident AppSK instead.
const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signer: PayloadSigner = {
  alg: 'rsa-v1_5-sha256',
  sign: async (data) => sign('sha256', data, privateKey),
};

// The place of a GNSS fix (Santa Clara), from the place table both sides ship: ISO 3166 country and
// first-level subdivision boundaries.
const place = labelPoint(37.354, -121.955);
assert.deepEqual(place, { region: 'US', state: 'California' });

// Agent side: sign the payload. The signature covers the JCS form of every other member.
const payload = await signPayload(
  {
    version: 1,
    agent_name: 'agent-001',
    tpm_public_key_hash: 'a'.repeat(64), // keyid: SHA-256 of the AppSK SubjectPublicKeyInfo DER
    nonce: randomBytes(32).toString('base64url'), // stands in for the one `GET /nonce` returned
    timestamp: new Date().toISOString(),
    metrics: { cpu: 0.42 },
    geographic_region: place!,
  },
  signer,
);

// Verifier side: parse strictly (unknown members are refused), then check the signature.
const received = metricsPayloadSchema.parse(JSON.parse(JSON.stringify(payload)));
assert.equal(verifyPayloadSignature(received, publicKey), true);
const tampered = { ...received, metrics: { cpu: 0.99 } };
assert.equal(verifyPayloadSignature(tampered, publicKey), false);

// Every rejection is an RFC 9457 problem whose validation_type comes from a closed set.
const problem = {
  type: problemTypeUri('nonce_validation'),
  title: VALIDATION_TYPE_INFO.nonce_validation.title,
  status: 401,
  error: 'Invalid or expired nonce for this agent',
  rejected_by: 'collector',
  validation_type: 'nonce_validation',
  timestamp: new Date().toISOString(),
  request_id: 'req-1',
};
assert.equal(isProblem(problem), true);
assert.equal(isProblem({ ...problem, validation_type: 'teapot' }), false);
