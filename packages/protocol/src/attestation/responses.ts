/**
 * Success bodies of the attestation endpoints (SPEC §4, §5.4): what the verifier answers and the
 * agent reads. Rejections are problems (see `problem.ts`).
 */

/**
 * `201` body of `POST /enroll`.
 * @public
 */
export interface EnrollStartResponse {
  /** Id for `POST /enroll/{id}/complete`. */
  enrollment_id: string;
  /** TPM2B_ID_OBJECT for ActivateCredential, base64url. */
  credential_blob: string;
  /** TPM2B_ENCRYPTED_SECRET for ActivateCredential, base64url. */
  encrypted_secret: string;
  /** 32 random bytes, base64url: the certify qualifying data and part of the quote's. */
  nonce: string;
  /** When the pending enrolment expires (ISO 8601). */
  expires_at: string;
  /** The PCRs the quote must cover. */
  pcr_selection: Array<{ bank: string; pcrs: number[] }>;
}

/**
 * `200` body of `POST /enroll/{id}/complete`.
 * @public
 */
export interface EnrollCompleteResponse {
  /** Registry status: `active`, or `pending` until an operator approves the agent. */
  status: 'active' | 'pending';
  /** Agent name. */
  agent_name: string;
  /** keyid of the AppSK. */
  keyid: string;
  /** RFC 9421 `alg` of the AppSK. */
  alg: 'ecdsa-p256-sha256' | 'rsa-v1_5-sha256';
  /** `verified` or `recorded` (no reference values configured). */
  platform_integrity: 'verified' | 'recorded';
  /** `verified` or `recorded` (no approved digests configured). */
  agent_integrity: 'verified' | 'recorded';
  /** The attestation result JWT. */
  attestation_result: string;
}

/**
 * `200` body of `POST /attest/location`.
 * @public
 */
export interface LocationAttestationResponse {
  /** Always `success` (rejections are problem responses). */
  status: 'success';
  /** Agent name. */
  agent_name: string;
  /** Location trust level reached. */
  trust_level: 'none' | 'low' | 'medium';
  /** The attestation result JWT (`geofence.residency = "tpm+geofence"`): the PoG credential. */
  attestation_result: string;
  /**
   * With `credential_format: "x509"`: the PoG certificate of the AppSK, base64url of its DER bytes,
   * issued by the collector's attestation CA and carrying the same claims as the JWT.
   */
  certificate?: string;
}
