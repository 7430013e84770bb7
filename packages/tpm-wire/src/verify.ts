import { parseAttest, type TpmsAttest } from './attest.js';
import { decodeObjectAttributes, type ObjectAttributes } from './attributes.js';
import { bytesEqual } from './buffer.js';
import { TPM_GENERATED_VALUE } from './constants.js';
import { TpmWireError } from './errors.js';
import { objectName } from './keys.js';
import { type PcrSelection, type PcrValues, pcrDigest } from './pcr.js';
import { asPublic, type TpmPublic } from './public.js';
import { parseSignature, type TpmtSignature, verifyTpmSignature } from './signature.js';

/**
 * Inputs common to {@link verifyCertify} and {@link verifyQuote}.
 * @public
 */
export interface AttestationInput {
  /** TPMS_ATTEST bytes exactly as the TPM returned them. */
  attest: Uint8Array;
  /** TPMT_SIGNATURE bytes. */
  signature: Uint8Array;
  /** The AK: must be a restricted signing key (otherwise TPM_GENERATED_VALUE proves nothing). */
  akPublic: TpmPublic | Uint8Array;
  /** The nonce the verifier issued; must equal `extraData` byte for byte. */
  qualifyingData: Uint8Array;
}

/**
 * Result of {@link verifyCertify}: the attestation plus the certified object's public area and attributes,
 * so callers can enforce key policy (e.g. fixedTPM, fixedParent, sensitiveDataOrigin, sign, not restricted).
 * @public
 */
export interface VerifiedCertify extends TpmsAttest {
  /** Always `'certify'`. */
  type: 'certify';
  /** The certify body (always present). */
  certify: { name: Uint8Array; qualifiedName: Uint8Array };
  /** The certified object's public area (parsed). */
  object: TpmPublic;
  /** The certified object's decoded attributes (same as `object.attributes`). */
  objectAttributes: ObjectAttributes;
  /** The parsed AK signature. */
  parsedSignature: TpmtSignature;
}

/**
 * Result of {@link verifyQuote}.
 * @public
 */
export interface VerifiedQuote extends TpmsAttest {
  /** Always `'quote'`. */
  type: 'quote';
  /** The quote body (always present). */
  quote: { pcrSelect: PcrSelection; pcrDigest: Uint8Array };
  /** The parsed AK signature (its hash is the PCR digest hash). */
  parsedSignature: TpmtSignature;
}

/**
 * Checks shared by certify and quote, in this order: AK is a restricted signing key (`invalid_ak`),
 * structure parses, signature valid under the AK (`bad_signature`), magic (`bad_magic`), type (`wrong_type`),
 * extraData equals the nonce (`nonce_mismatch`). The signature is checked before any field is interpreted.
 */
function verifyCommon(
  input: AttestationInput,
  expected: 'certify' | 'quote',
): { attest: TpmsAttest; sig: TpmtSignature } {
  const ak = asPublic(input.akPublic);
  // Decode from the raw TPMA_OBJECT (what the Name covers), not from a possibly hand-edited `attributes`.
  const akAttrs = decodeObjectAttributes(ak.objectAttributes);
  if (!akAttrs.restricted || !akAttrs.sign || akAttrs.decrypt) {
    throw new TpmWireError(
      'invalid_ak',
      'AK must be a restricted signing key (restricted, sign, not decrypt)',
    );
  }
  const attest = parseAttest(input.attest);
  const sig = parseSignature(input.signature);
  if (!verifyTpmSignature(input.attest, sig, ak)) {
    throw new TpmWireError('bad_signature', `${expected}: signature does not verify under the AK`);
  }
  if (attest.magic !== TPM_GENERATED_VALUE) {
    throw new TpmWireError(
      'bad_magic',
      `${expected}: magic 0x${attest.magic.toString(16)} is not TPM_GENERATED`,
    );
  }
  if (attest.type !== expected) {
    throw new TpmWireError(
      'wrong_type',
      `expected ATTEST_${expected.toUpperCase()}, got 0x${attest.typeId.toString(16)}`,
    );
  }
  if (!bytesEqual(attest.extraData, input.qualifyingData)) {
    throw new TpmWireError('nonce_mismatch', `${expected}: extraData does not equal the qualifying data`);
  }
  return { attest, sig };
}

/**
 * Verifies a TPM2_Certify result: the AK signed a TPM-generated ATTEST_CERTIFY over the expected nonce whose
 * attested Name equals the Name of `objectPublic`.
 *
 * @remarks
 * Failure codes, in check order: `invalid_ak`, parser codes, `bad_signature`, `bad_magic`, `wrong_type`,
 * `nonce_mismatch`, `name_mismatch`, `attribute_mismatch` (only with `requireObjectAttributes`).
 *
 * @param input - attestation, signature, AK, nonce, the certified object's public area and, optionally,
 * attribute values the object must have (e.g. `{ fixedTPM: true, restricted: false }`)
 * @returns the attestation with the object's public area and attributes
 * @throws {@link TpmWireError} naming the failed check
 * @public
 */
export function verifyCertify(
  input: AttestationInput & {
    objectPublic: TpmPublic | Uint8Array;
    requireObjectAttributes?: Partial<ObjectAttributes>;
  },
): VerifiedCertify {
  const { attest, sig } = verifyCommon(input, 'certify');
  const object = asPublic(input.objectPublic);
  const certify = attest.certify;
  if (!certify || !bytesEqual(certify.name, objectName(object))) {
    throw new TpmWireError(
      'name_mismatch',
      'certify: attested Name is not the Name of the object public area',
    );
  }
  const objectAttributes = decodeObjectAttributes(object.objectAttributes);
  for (const [k, want] of Object.entries(input.requireObjectAttributes ?? {})) {
    if (objectAttributes[k as keyof ObjectAttributes] !== want) {
      throw new TpmWireError('attribute_mismatch', `certify: object attribute ${k} must be ${String(want)}`);
    }
  }
  return {
    ...attest,
    type: 'certify',
    certify,
    object: { ...object, attributes: objectAttributes },
    objectAttributes,
    parsedSignature: sig,
  };
}

function selectionKey(sel: PcrSelection): string {
  return sel.map(({ bank, pcrs }) => `${bank}:${[...pcrs].sort((a, b) => a - b).join(',')}`).join('+');
}

/**
 * Verifies a TPM2_Quote result and binds the reported PCR values to it.
 *
 * @remarks
 * Failure codes, in check order: `invalid_ak`, parser codes, `bad_signature`, `bad_magic`, `wrong_type`,
 * `nonce_mismatch`, `pcr_selection_mismatch` (quote selection differs from `expectedSelection`, or
 * `pcrValues` contains a bank/PCR the quote does not cover — such values would be unattested),
 * `pcr_values_missing`, `malformed` (value of the wrong length), `pcr_digest_mismatch`.
 * The PCR digest is computed with the signature's hash, as the TPM does.
 *
 * @param input - attestation, signature, AK, nonce, the PCR values and optionally the selection the verifier
 * asked for
 * @returns the verified quote
 * @throws {@link TpmWireError} naming the failed check
 * @public
 */
export function verifyQuote(
  input: AttestationInput & { pcrValues: PcrValues; expectedSelection?: PcrSelection },
): VerifiedQuote {
  const { attest, sig } = verifyCommon(input, 'quote');
  const quote = attest.quote;
  if (!quote) throw new TpmWireError('wrong_type', 'quote body missing');
  if (input.expectedSelection && selectionKey(input.expectedSelection) !== selectionKey(quote.pcrSelect)) {
    throw new TpmWireError(
      'pcr_selection_mismatch',
      `quote covers ${selectionKey(quote.pcrSelect)}, expected ${selectionKey(input.expectedSelection)}`,
    );
  }
  const covered = new Set(quote.pcrSelect.flatMap(({ bank, pcrs }) => pcrs.map((p) => `${bank}:${p}`)));
  for (const [bank, values] of Object.entries(input.pcrValues)) {
    for (const p of Object.keys(values)) {
      if (!covered.has(`${bank}:${Number(p)}`)) {
        throw new TpmWireError(
          'pcr_selection_mismatch',
          `PCR value ${bank}:${p} is not covered by the quote`,
        );
      }
    }
  }
  const digest = pcrDigest(quote.pcrSelect, input.pcrValues, sig.hashAlg);
  if (!bytesEqual(digest, quote.pcrDigest)) {
    throw new TpmWireError('pcr_digest_mismatch', 'quote: PCR digest does not match the reported PCR values');
  }
  return { ...attest, type: 'quote', quote, parsedSignature: sig };
}
