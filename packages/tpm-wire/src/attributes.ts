/**
 * Decoded TPMA_OBJECT bits (TPM 2.0 Part 2 §8.3).
 * @public
 */
export interface ObjectAttributes {
  /** Bit 1: the object cannot be duplicated to another TPM (its hierarchy's fixedTPM also applies). */
  fixedTPM: boolean;
  /** Bit 2: saved contexts cannot be loaded after a TPM Reset/Restart. */
  stClear: boolean;
  /** Bit 4: the parent of the object may not change (not duplicable). */
  fixedParent: boolean;
  /** Bit 5: the TPM generated the sensitive part (the private key never existed outside the TPM). */
  sensitiveDataOrigin: boolean;
  /** Bit 6: USER role actions may use the authValue. */
  userWithAuth: boolean;
  /** Bit 7: ADMIN role actions require a policy session. */
  adminWithPolicy: boolean;
  /** Bit 10: not subject to dictionary-attack protection. */
  noDA: boolean;
  /** Bit 11: duplication requires an inner wrapper. */
  encryptedDuplication: boolean;
  /** Bit 16: key usage is restricted to TPM-generated structures (AKs, storage keys). */
  restricted: boolean;
  /** Bit 17: a decryption key. */
  decrypt: boolean;
  /** Bit 18: a signing key (sign/encrypt). */
  sign: boolean;
  /** Bit 19: may sign X.509 TBS structures (TPM 2.0 rev 1.59+). */
  x509sign: boolean;
}

/** Bit positions of each named attribute. @internal */
export const ATTRIBUTE_BITS: Readonly<Record<keyof ObjectAttributes, number>> = {
  fixedTPM: 1,
  stClear: 2,
  fixedParent: 4,
  sensitiveDataOrigin: 5,
  userWithAuth: 6,
  adminWithPolicy: 7,
  noDA: 10,
  encryptedDuplication: 11,
  restricted: 16,
  decrypt: 17,
  sign: 18,
  x509sign: 19,
};

/**
 * Decodes a TPMA_OBJECT value into named booleans. Reserved bits are ignored here; they stay visible in the
 * raw `objectAttributes` number of a parsed public.
 * @param value - the 32-bit TPMA_OBJECT
 * @returns the decoded attributes
 * @public
 */
export function decodeObjectAttributes(value: number): ObjectAttributes {
  const out = {} as ObjectAttributes;
  for (const [name, bit] of Object.entries(ATTRIBUTE_BITS) as Array<[keyof ObjectAttributes, number]>) {
    out[name] = ((value >>> bit) & 1) === 1;
  }
  return out;
}

/**
 * Encodes named booleans into a TPMA_OBJECT value (missing names are false).
 * @param attrs - attributes to set
 * @returns the 32-bit TPMA_OBJECT
 * @public
 */
export function encodeObjectAttributes(attrs: Partial<ObjectAttributes>): number {
  let v = 0;
  for (const [name, bit] of Object.entries(ATTRIBUTE_BITS) as Array<[keyof ObjectAttributes, number]>) {
    if (attrs[name]) v |= 1 << bit;
  }
  return v >>> 0;
}
