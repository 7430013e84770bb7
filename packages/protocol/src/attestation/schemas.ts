/**
 * Wire schemas of the attestation endpoints (SPEC §4, §5.4). Objects are strict: an unknown member
 * is a `request_validation` error, so what the TPM quote covers (the JCS of the parsed request) is
 * exactly what was sent.
 */
import { z } from 'zod';
import { CREDENTIAL_FORMATS } from '../credential.js';
import { agentNameSchema } from '../protocol.js';

const b64u = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .regex(/^[A-Za-z0-9_-]+$/, 'must be base64url without padding');
const hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex characters');
const label = z.string().min(1).max(256);

/**
 * Sensor identity declared at enrolment (binds the location sensor to the TPM, SPEC §4).
 * @public
 */
export const sensorInfoSchema = z.strictObject({
  type: label,
  model: label,
  serial: label,
  firmware: label.optional(),
});
/**
 * Location sensor identity.
 * @public
 */
export type SensorInfo = z.infer<typeof sensorInfoSchema>;

/**
 * Body of `POST /enroll` (SPEC §4 step 1). Binary members are base64url; `public` members are
 * TPM2B_PUBLIC bytes and `certificate` is the EK certificate DER.
 * @public
 */
export const enrollRequestSchema = z.strictObject({
  agent_name: agentNameSchema,
  ek: z.strictObject({ public: b64u(2048), certificate: b64u(8192).optional() }),
  ak: z.strictObject({ public: b64u(2048) }),
  app_key: z.strictObject({ public: b64u(2048) }),
  workload: z.strictObject({ name: label, version: label, image_digest: hex64 }),
  platform: z.strictObject({ os: label, kernel: label }),
  sensor: sensorInfoSchema.optional(),
});
/**
 * `POST /enroll` request body.
 * @public
 */
export type EnrollRequest = z.infer<typeof enrollRequestSchema>;

const bankSchema = z.enum(['sha1', 'sha256', 'sha384', 'sha512']);
const pcrIndex = z.string().regex(/^(?:[0-9]|1[0-9]|2[0-3])$/, 'PCR index 0..23');
const pcrHex = z
  .string()
  .regex(/^(?:[0-9a-f]{40}|[0-9a-f]{64}|[0-9a-f]{96}|[0-9a-f]{128})$/, 'PCR digest hex');

/**
 * Reported PCR values: `{ bank: { "index": "hex" } }`.
 * @public
 */
export const pcrValuesSchema = z.partialRecord(bankSchema, z.record(pcrIndex, pcrHex));
/**
 * Reported PCR values (hex).
 * @public
 */
export type PcrValuesJson = z.infer<typeof pcrValuesSchema>;

/**
 * Body of `POST /enroll/{id}/complete` (SPEC §4 step 2).
 * @public
 */
export const enrollCompleteSchema = z.strictObject({
  secret: b64u(128),
  certify: z.strictObject({ attest: b64u(2048), signature: b64u(1024) }),
  quote: z.strictObject({ attest: b64u(2048), signature: b64u(1024), pcrs: pcrValuesSchema }),
});
/**
 * `POST /enroll/{id}/complete` request body.
 * @public
 */
export type EnrollCompleteRequest = z.infer<typeof enrollCompleteSchema>;

/**
 * Name of the optional `lah-bundle` member carrying a mobile network operator's signed location
 * corroboration (draft-lkspa-rats-verifiable-geo-fence-03 §5.3.4: `mno-key-cert`, `mno-sig` over
 * the JCS of its geolocation payload, which answers the bundle's nonce). The agent carries the object
 * as the operator signed it ({@link mnoLocationSchema}); the verifier appraises it.
 * @public
 */
export const MNO_LOCATION_MEMBER = 'mno-location';

/**
 * The V-PEA `lah-bundle` (draft-lkspa-rats-verifiable-geo-fence, SPEC §5.4).
 * `tpm-quote-seal` is base64url of the TPM2_Quote response parameters: TPM2B_ATTEST ‖ TPMT_SIGNATURE.
 * @public
 */
export const lahBundleSchema = z
  .strictObject({
    'tpm-ak': z.string().min(1).max(4096),
    'geolocation-id-hash': b64u(64),
    'geolocation-proof-hash': b64u(64),
    'privacy-technique': z.string().min(1).max(32),
    'geolocation-payload': z.record(z.string(), z.unknown()),
    nonce: z.string().min(1).max(128),
    timestamp: z.number().int().nonnegative(),
    'tpm-quote-seal': b64u(4096),
    'target-environment-image-digest': hex64.optional(),
    'workload-identity-agent-image-digest': hex64.optional(),
    'mno-location': z.record(z.string(), z.unknown()).optional(),
    'mno-endorsement': z.record(z.string(), z.unknown()).optional(),
  })
  .refine(
    (b) =>
      (b['target-environment-image-digest'] === undefined) !==
      (b['workload-identity-agent-image-digest'] === undefined),
    { message: 'exactly one of target-environment-image-digest and workload-identity-agent-image-digest' },
  )
  .refine((b) => b['mno-location'] === undefined || b['mno-endorsement'] === undefined, {
    message: 'at most one of mno-location and mno-endorsement',
  });

/**
 * A signed MNO location statement (V-PEA §5.3.4 `mno-location`, also named `mno-endorsement`): the
 * mobile network operator's own estimate of where the device is, for this attestation's nonce,
 * signed by the operator's key whose certificate chains to a configured MNO CA.
 * @public
 */
export const mnoLocationSchema = z.strictObject({
  /** What the MNO signs (`mno-sig` is over its JCS): its area estimate, the bundle nonce, the time. */
  'geolocation-payload': z.strictObject({
    lat: z.number().min(-90).max(90),
    lon: z.number().min(-180).max(180),
    accuracy: z.number().nonnegative().finite(),
    nonce: z.string().min(1).max(128),
    timestamp: z.number().int().nonnegative(),
  }),
  /** The MNO signing certificate, base64 (or base64url) DER. */
  'mno-key-cert': z.string().min(1).max(8192),
  /** ECDSA P-256 / SHA-256 signature over the JCS of `geolocation-payload`, raw r‖s, base64url. */
  'mno-sig': b64u(128),
});
/**
 * A signed MNO location statement.
 * @public
 */
export type MnoLocation = z.infer<typeof mnoLocationSchema>;
/**
 * A V-PEA `lah-bundle`.
 * @public
 */
export type LahBundle = z.infer<typeof lahBundleSchema>;

/**
 * Body of `POST /attest/location`: the bundle, the agent it claims to come from, the AK's
 * TPM2B_PUBLIC (so the verifier can check it is a restricted signing key with the enrolled public
 * key), and the PCR values the quote's digest covers (checked against that digest).
 * @public
 */
export const locationAttestationRequestSchema = z.strictObject({
  agent_name: agentNameSchema,
  /** The AK's TPM2B_PUBLIC (base64url): the same key as `tpm-ak`, with its TPM attributes. */
  ak_public: b64u(2048),
  'lah-bundle': lahBundleSchema,
  'pcr-values': pcrValuesSchema,
  /** Credential encoding wanted (`CREDENTIAL_FORMATS`; default `jwt`). */
  credential_format: z.enum(CREDENTIAL_FORMATS).optional(),
});
/**
 * `POST /attest/location` request body.
 * @public
 */
export type LocationAttestationRequest = z.infer<typeof locationAttestationRequestSchema>;

/**
 * The `none` privacy-technique payload: raw coordinates, accuracy radius (metres) and fix time.
 * @public
 */
export const rawGeolocationPayloadSchema = z.strictObject({
  lat: z.number().min(-90).max(90),
  lon: z.number().min(-180).max(180),
  accuracy: z.number().nonnegative().finite(),
  fix_time: z.iso.datetime({ offset: true }),
});
