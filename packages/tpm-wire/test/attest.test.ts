import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  marshalAttest,
  marshalSignature,
  objectName,
  type PcrValues,
  parseAttest,
  parsePublic,
  parseSignature,
  pcrDigest,
  TPM_GENERATED_VALUE,
  verifyCertify,
  verifyQuote,
  verifyTpmSignature,
} from '../src/index.js';
import { codeOf, FIXTURES, fixture, hex, softwareEccKey, softwareTpmSign } from './helpers.js';

const AKS = [
  ['ak-rsa', 'rsassa'],
  ['ak-rsapss', 'rsapss'],
  ['ak-ecc', 'ecdsa'],
] as const;
const nonce = fixture('nonce.bin');
const appEcc = fixture('app-ecc.pub');
const pcrValues: PcrValues = {
  sha1: { 0: fixture('pcr-sha1-0.bin'), 16: fixture('pcr-sha1-16.bin') },
  sha256: {
    0: fixture('pcr-sha256-0.bin'),
    7: fixture('pcr-sha256-7.bin'),
    16: fixture('pcr-sha256-16.bin'),
    23: fixture('pcr-sha256-23.bin'),
  },
};
const APP_KEY_POLICY = {
  fixedTPM: true,
  fixedParent: true,
  sensitiveDataOrigin: true,
  sign: true,
  restricted: false,
  decrypt: false,
} as const;

function flip(b: Uint8Array, i: number): Uint8Array {
  const c = Uint8Array.from(b);
  c[i] = (c[i] as number) ^ 1;
  return c;
}

describe('TPMS_ATTEST and TPMT_SIGNATURE from swtpm', () => {
  for (const [ak, scheme] of AKS) {
    it(`${ak}: certify parses, round-trips and verifies; every tampering is caught`, () => {
      const attest = fixture(`certify-${ak}.attest`);
      const signature = fixture(`certify-${ak}.sig`);
      const akPublic = fixture(`${ak}.pub`);
      const a = parseAttest(attest);
      expect(a.magic).toBe(TPM_GENERATED_VALUE);
      expect(a.type).toBe('certify');
      expect(a.typeId).toBe(0x8017);
      expect(hex(a.extraData)).toBe(hex(nonce));
      expect(hex(a.certify!.name)).toBe(hex(fixture('app-ecc.name')));
      expect(a.certify!.qualifiedName.length).toBe(34);
      expect(hex(marshalAttest(a))).toBe(hex(attest));
      const sig = parseSignature(signature);
      expect(sig.alg).toBe(scheme);
      expect(sig.hashAlg).toBe('sha256');
      expect(hex(marshalSignature(sig))).toBe(hex(signature));
      if (sig.alg === 'ecdsa') expect(sig.signature.length).toBe(64);
      expect(verifyTpmSignature(attest, signature, akPublic)).toBe(true);

      const ok = verifyCertify({
        attest,
        signature,
        akPublic,
        objectPublic: appEcc,
        qualifyingData: nonce,
        requireObjectAttributes: APP_KEY_POLICY,
      });
      expect(ok.objectAttributes).toMatchObject(APP_KEY_POLICY);
      expect(hex(objectName(ok.object))).toBe(hex(ok.certify.name));

      const base = { attest, signature, akPublic, objectPublic: appEcc, qualifyingData: nonce };
      expect(codeOf(() => verifyCertify({ ...base, attest: flip(attest, 40) }))).toBe('bad_signature');
      expect(codeOf(() => verifyCertify({ ...base, signature: flip(signature, signature.length - 5) }))).toBe(
        'bad_signature',
      );
      expect(codeOf(() => verifyCertify({ ...base, qualifyingData: flip(nonce, 31) }))).toBe(
        'nonce_mismatch',
      );
      expect(codeOf(() => verifyCertify({ ...base, qualifyingData: new Uint8Array(0) }))).toBe(
        'nonce_mismatch',
      );
      expect(codeOf(() => verifyCertify({ ...base, objectPublic: fixture('app-rsa.pub') }))).toBe(
        'name_mismatch',
      );
      const otherAk = ak === 'ak-ecc' ? 'ak-rsa' : 'ak-ecc';
      expect(codeOf(() => verifyCertify({ ...base, akPublic: fixture(`${otherAk}.pub`) }))).toBe(
        'bad_signature',
      );
      expect(codeOf(() => verifyCertify({ ...base, akPublic: appEcc }))).toBe('invalid_ak');
      expect(codeOf(() => verifyCertify({ ...base, requireObjectAttributes: { restricted: true } }))).toBe(
        'attribute_mismatch',
      );
      expect(codeOf(() => verifyQuote({ ...base, pcrValues }))).toBe('wrong_type');
    });

    it(`${ak}: quote verifies against pcrread values; PCR and selection tampering is caught`, () => {
      const attest = fixture(`quote-${ak}.attest`);
      const signature = fixture(`quote-${ak}.sig`);
      const akPublic = fixture(`${ak}.pub`);
      const a = parseAttest(attest);
      expect(a.type).toBe('quote');
      expect(hex(a.extraData)).toBe(hex(nonce));
      expect(a.quote!.pcrSelect).toEqual([
        { bank: 'sha1', pcrs: [0, 16] },
        { bank: 'sha256', pcrs: [0, 7, 16, 23] },
      ]);
      expect(hex(marshalAttest(a))).toBe(hex(attest));
      // The TPM's own digest equals ours over tpm2_pcrread's values.
      expect(hex(pcrDigest(a.quote!.pcrSelect, pcrValues, 'sha256'))).toBe(hex(a.quote!.pcrDigest));

      const base = { attest, signature, akPublic, qualifyingData: nonce, pcrValues };
      const ok = verifyQuote({ ...base, expectedSelection: a.quote!.pcrSelect });
      expect(ok.parsedSignature.alg).toBe(scheme);

      const wrong = { ...pcrValues, sha256: { ...pcrValues.sha256, 16: flip(pcrValues.sha256![16]!, 0) } };
      expect(codeOf(() => verifyQuote({ ...base, pcrValues: wrong }))).toBe('pcr_digest_mismatch');
      const missing = { ...pcrValues, sha1: { 0: pcrValues.sha1![0]! } };
      expect(codeOf(() => verifyQuote({ ...base, pcrValues: missing }))).toBe('pcr_values_missing');
      const extra = { ...pcrValues, sha256: { ...pcrValues.sha256, 8: new Uint8Array(32) } };
      expect(codeOf(() => verifyQuote({ ...base, pcrValues: extra }))).toBe('pcr_selection_mismatch');
      const short = { ...pcrValues, sha1: { ...pcrValues.sha1, 0: new Uint8Array(32) } };
      expect(codeOf(() => verifyQuote({ ...base, pcrValues: short }))).toBe('malformed');
      expect(
        codeOf(() => verifyQuote({ ...base, expectedSelection: [{ bank: 'sha256', pcrs: [0, 7, 16, 23] }] })),
      ).toBe('pcr_selection_mismatch');
      expect(codeOf(() => verifyQuote({ ...base, qualifyingData: nonce.subarray(1) }))).toBe(
        'nonce_mismatch',
      );
      expect(codeOf(() => verifyQuote({ ...base, attest: flip(attest, attest.length - 1) }))).toBe(
        'bad_signature',
      );
    });
  }

  it('tpm2_checkquote (independent verifier) accepts the same quote', () => {
    const out = execFileSync(
      'tpm2_checkquote',
      [
        '-u',
        `${FIXTURES}ak-ecc.pem`,
        '-m',
        `${FIXTURES}quote-ak-ecc.attest`,
        '-s',
        `${FIXTURES}quote-ak-ecc.sig`,
        '-q',
        hex(nonce),
        '-g',
        'sha256',
      ],
      { encoding: 'utf8' },
    );
    // tpm2_checkquote exits non-zero on a bad nonce/signature and prints the DER signature it verified:
    // its r and s are ours.
    const sig = parseSignature(fixture('quote-ak-ecc.sig'));
    expect(out).toContain(hex(sig.r!));
    expect(out).toContain(hex(sig.s!));
  });

  it('checks magic and type only on authenticated data (software restricted AK)', () => {
    const { pub, privateKey } = softwareEccKey({
      fixedTPM: true,
      fixedParent: true,
      sensitiveDataOrigin: true,
      restricted: true,
      sign: true,
    });
    const a = parseAttest(fixture('certify-ak-ecc.attest'));
    const objectPublic = appEcc;
    const sign = (m: Uint8Array) => ({ attest: m, signature: softwareTpmSign(privateKey, m) });
    const good = sign(marshalAttest(a));
    expect(verifyCertify({ ...good, akPublic: pub, objectPublic, qualifyingData: nonce }).type).toBe(
      'certify',
    );
    const badMagic = sign(marshalAttest({ ...a, magic: 0xff544348 }));
    expect(
      codeOf(() => verifyCertify({ ...badMagic, akPublic: pub, objectPublic, qualifyingData: nonce })),
    ).toBe('bad_magic');
    const other = sign(marshalAttest({ ...a, type: 'other', typeId: 0x8019, attested: new Uint8Array(8) }));
    expect(parseAttest(other.attest).attested?.length).toBe(8);
    expect(
      codeOf(() => verifyCertify({ ...other, akPublic: pub, objectPublic, qualifyingData: nonce })),
    ).toBe('wrong_type');
    // Same key without `restricted`: it could sign a forged TPMS_ATTEST, so it is refused as an AK.
    const unrestricted = { ...pub, objectAttributes: pub.objectAttributes & ~(1 << 16) };
    expect(
      codeOf(() => verifyCertify({ ...good, akPublic: unrestricted, objectPublic, qualifyingData: nonce })),
    ).toBe('invalid_ak');
  });

  it('refuses SHA-1 signatures and scheme mismatches', () => {
    const attest = fixture('certify-ak-ecc.attest');
    const sig = parseSignature(fixture('certify-ak-ecc.sig'));
    expect(verifyTpmSignature(attest, { ...sig, hashAlg: 'sha1' }, fixture('ak-ecc.pub'))).toBe(false);
    expect(verifyTpmSignature(attest, { ...sig, alg: 'rsassa' }, fixture('ak-ecc.pub'))).toBe(false);
    const rsa = parseSignature(fixture('certify-ak-rsa.sig'));
    // An RSASSA signature against the RSAPSS-only AK.
    expect(verifyTpmSignature(attest, rsa, parsePublic(fixture('ak-rsapss.pub')))).toBe(false);
  });

  it('rejects truncated and trailing attest/signature bytes', () => {
    const attest = fixture('quote-ak-rsa.attest');
    for (let n = 0; n < attest.length; n++)
      expect(codeOf(() => parseAttest(attest.subarray(0, n)))).toBe('truncated');
    expect(codeOf(() => parseAttest(Uint8Array.from([...attest, 0])))).toBe('trailing_data');
    const sig = fixture('quote-ak-ecc.sig');
    for (let n = 0; n < sig.length; n++)
      expect(codeOf(() => parseSignature(sig.subarray(0, n)))).toBe('truncated');
    expect(codeOf(() => parseSignature(Uint8Array.from([...sig, 0])))).toBe('trailing_data');
    expect(codeOf(() => parseSignature(Uint8Array.of(0, 0x05, 0, 0x0b)))).toBe('unsupported_algorithm');
  });
});
