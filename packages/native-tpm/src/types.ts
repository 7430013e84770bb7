/**
 * Key algorithms this package creates: RSA-2048 (RSASSA-PKCS1-v1_5 / SHA-256) or NIST P-256 (ECDSA / SHA-256).
 * @public
 */
export type KeyAlg = 'rsa-2048' | 'ecc-p256';

/**
 * Endorsement key algorithms: the TCG default RSA-2048 (template L-1) and ECC P-256 (L-2) EKs, and the
 * ECC P-384 EK of the TCG high-range template H-3, which is the ECC EK swtpm provisions (persistent at
 * 0x81010016, certificate at NV 0x01C00016).
 * @public
 */
export type EkAlg = KeyAlg | 'ecc-p384';

/**
 * A TPM key as plain data, safe to store as JSON/base64 (it contains no secret in the clear:
 * the private part of `blob` is encrypted by the TPM's storage root key and only usable on that TPM).
 * @public
 */
export interface TpmKey {
  /** TPM2B_PUBLIC bytes (with the 2-byte size prefix). */
  public: Uint8Array;
  /** TPM object Name: nameAlg id ‖ SHA-256(TPMT_PUBLIC), as computed by the TPM. */
  name: Uint8Array;
  /**
   * Marshalled TPM2B_PRIVATE ‖ TPM2B_PUBLIC, loadable under this package's storage root key
   * (ECC P-256 primary in the owner hierarchy, deterministic template). Present for keys created
   * or loaded from a blob.
   */
  blob?: Uint8Array;
  /**
   * Persistent handle (0x81000000-0x81FFFFFF) when the key was made persistent; used in preference to `blob`.
   * Before use the TPM's Name of the object at that handle is compared with `name`, so a handle that
   * was evicted and re-used for another key is refused (`invalid_argument`) rather than signed with.
   */
  handle?: number;
}

import type { HashAlg, PcrSelection, PcrValues } from '@geofence/tpm-wire';

export type { PcrSelection, PcrValues };

/** PCR bank hash algorithm (`@geofence/tpm-wire`'s `HashAlg`). @public */
export type PcrBank = HashAlg;

/** Output of `TPM2_Certify`. @public */
export interface CertifyResult {
  /** TPMS_ATTEST bytes (the content of TPM2B_ATTEST, without its size prefix). */
  attest: Uint8Array;
  /** Marshalled TPMT_SIGNATURE. */
  signature: Uint8Array;
}

/** Output of `TPM2_Quote` plus the quoted PCR values, read right after the quote. @public */
export interface QuoteResult extends CertifyResult {
  /** Values of the selected PCRs. */
  pcrValues: PcrValues;
}

/** Identity of the TPM from its fixed properties. @public */
export interface TpmInfo {
  /** Manufacturer ID as 4 ASCII characters (TPM_PT_MANUFACTURER), e.g. `"IBM"`. */
  manufacturer: string;
  /** Vendor string (TPM_PT_VENDOR_STRING_1..4), trimmed. */
  vendorString: string;
  /** Firmware version `major.minor.x.y` from TPM_PT_FIRMWARE_VERSION_1/2. */
  firmwareVersion: string;
  /** Specification family, e.g. `"2.0"`. */
  family: string;
  /** Specification revision, e.g. `"1.64"`. */
  specRevision: string;
  /** Specification level (TPM_PT_LEVEL). */
  specLevel: number;
  /** Specification date `YYYY-DDD` (year and day of year). */
  specDate: string;
  /** Minimum number of transient objects the TPM can hold (TPM_PT_HR_TRANSIENT_MIN). */
  transientSlots: number;
  /** Largest NV read/write chunk (TPM_PT_NV_BUFFER_MAX). */
  nvBufferMax: number;
  /** All fixed properties, raw: property id → value. */
  properties: Record<number, number>;
}

/** Per-command timing counters, see `Tpm.stats()`. @public */
export interface TpmCommandStats {
  /** Completed calls (successful or not). */
  calls: number;
  /** Calls that rejected. */
  errors: number;
  /** Time inside ESAPI calls (the TPM round trips), milliseconds, summed. */
  esapiMs: number;
  /** Time from dequeue to resolution (ESAPI + addon + marshalling), milliseconds, summed. */
  totalMs: number;
  /** Time spent waiting behind other commands on the same TPM, milliseconds, summed. */
  queuedMs: number;
}
