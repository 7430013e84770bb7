import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { contentDigest, createSigner, HttpSigError, signRequest, verifyRequest } from '@geofence/http-sig';

// A software P-256 key; on an agent the Signer would be backed by the TPM instead.
const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signer = createSigner({ key: privateKey, alg: 'ecdsa-p256-sha256', keyid: 'agent-key-1' });

const body = JSON.stringify({ version: 1, metrics: { cpu: 0.42 } });
const request = {
  method: 'POST',
  url: 'https://collector.example/metrics',
  headers: {
    'content-type': 'application/json',
    'content-digest': contentDigest(body, 'sha-256'),
    'workload-geo-id': 'US/California/Santa Clara',
  } as Record<string, string>,
  body,
};
const components = ['@method', '@path', 'content-type', 'content-digest', 'workload-geo-id'];
const created = Math.floor(Date.now() / 1000);

// Sign: returns the two header values; set them on the request.
const headers = await signRequest(request, {
  signer,
  components,
  label: 'geo',
  created,
  expires: created + 300,
  nonce: 'server-issued-nonce',
  tag: 'geofence/v1',
});
request.headers['signature-input'] = headers['signature-input'];
request.headers.signature = headers.signature;

// Verify: the key comes from your registry; the nonce callback consumes the nonce atomically.
const unusedNonces = new Set(['server-issued-nonce']);
const options = {
  keyLookup: async (keyid: string) => (keyid === 'agent-key-1' ? publicKey : undefined),
  label: 'geo',
  tag: 'geofence/v1',
  algorithms: ['ecdsa-p256-sha256'] as const,
  requiredComponents: components,
  requiredParams: ['created', 'expires', 'keyid', 'alg', 'nonce', 'tag'] as const,
  maxAgeSeconds: 300,
  nonce: (value: string) => unusedNonces.delete(value),
};
const verified = await verifyRequest(request, options);
assert.equal(verified.keyid, 'agent-key-1');
assert.deepEqual(verified.components, components);

// Every failure is an HttpSigError with a stable code.
const replay = await verifyRequest(request, options).catch((err: unknown) => err);
assert.ok(replay instanceof HttpSigError && replay.code === 'nonce_rejected');

request.headers['workload-geo-id'] = 'FR/Paris';
const tampered = await verifyRequest(request, options).catch((err: unknown) => err);
assert.ok(tampered instanceof HttpSigError && tampered.code === 'bad_signature');

console.log('signed and verified:', verified);
