import { createHash, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  keyIdFromSpki,
  keyIdOfPublic,
  marshalPublic,
  marshalTpmtPublic,
  objectName,
  objectNameHex,
  parsePublic,
  parseTpmtPublic,
  publicToJwk,
  publicToKeyObject,
  publicToPem,
  publicToSpkiDer,
} from '../src/index.js';
import { codeOf, fixture, fixtureText, hex, opensslSpkiDer, toolNames } from './helpers.js';

const KEYS = ['ek-rsa', 'ek-ecc', 'ak-rsa', 'ak-rsapss', 'ak-ecc', 'app-ecc', 'app-rsa'] as const;

describe('TPM2B_PUBLIC from swtpm/tpm2-tools', () => {
  const names = toolNames();
  for (const k of KEYS) {
    it(`${k}: round-trips, Name equals tpm2-tools, SPKI equals openssl's DER of tpm2_readpublic's PEM`, () => {
      const bytes = fixture(`${k}.pub`);
      const pub = parsePublic(bytes);
      expect(hex(marshalPublic(pub))).toBe(hex(bytes));
      expect(hex(pub.tpmt)).toBe(hex(bytes.subarray(2)));
      expect(hex(parseTpmtPublic(pub.tpmt).tpmt)).toBe(hex(pub.tpmt));
      expect(hex(objectName(pub))).toBe(names[k]);
      expect(objectNameHex(bytes)).toBe(hex(fixture(`${k}.name`)));

      const der = opensslSpkiDer(`${k}.pem`);
      expect(hex(publicToSpkiDer(pub))).toBe(hex(der));
      expect(publicToPem(pub)).toBe(fixtureText(`${k}.pem`));
      expect(keyIdOfPublic(pub)).toBe(createHash('sha256').update(der).digest('hex'));
      expect(keyIdFromSpki(der)).toMatch(/^[0-9a-f]{64}$/);
      expect(keyIdFromSpki(publicToKeyObject(pub))).toBe(keyIdOfPublic(bytes));
      const jwk = publicToJwk(pub);
      expect(hex(createPublicKey({ key: jwk, format: 'jwk' }).export({ format: 'der', type: 'spki' }))).toBe(
        hex(der),
      );
    });
  }

  it('decodes the TCG default RSA EK template fields', () => {
    const ek = parsePublic(fixture('ek-rsa.pub'));
    expect(ek.type).toBe('rsa');
    expect(ek.nameAlg).toBe('sha256');
    expect(ek.objectAttributes).toBe(0x000300b2);
    expect(ek.attributes).toMatchObject({
      fixedTPM: true,
      fixedParent: true,
      sensitiveDataOrigin: true,
      userWithAuth: false,
      adminWithPolicy: true,
      restricted: true,
      decrypt: true,
      sign: false,
    });
    // PolicySecret(TPM_RH_ENDORSEMENT), TCG EK Credential Profile.
    expect(hex(ek.authPolicy)).toBe('837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa');
    expect(ek.rsa?.symmetric).toEqual({ algorithm: 'aes', keyBits: 128, mode: 'cfb' });
    expect(ek.rsa?.scheme).toBeNull();
    expect(ek.rsa?.keyBits).toBe(2048);
    expect(ek.rsa?.exponent).toBe(0);
    expect(ek.rsa?.modulus.length).toBe(256);
    expect(publicToJwk(ek).e).toBe('AQAB');
  });

  it('decodes the ECC EK and AK schemes', () => {
    const ek = parsePublic(fixture('ek-ecc.pub'));
    expect(ek.ecc?.curve).toBe('p256');
    expect(ek.ecc?.kdf).toBeNull();
    expect(ek.ecc?.symmetric).toEqual({ algorithm: 'aes', keyBits: 128, mode: 'cfb' });
    expect(ek.ecc?.x.length).toBe(32);
    const ak = parsePublic(fixture('ak-ecc.pub'));
    expect(ak.ecc?.scheme).toEqual({ scheme: 'ecdsa', hashAlg: 'sha256' });
    expect(ak.attributes).toMatchObject({ restricted: true, sign: true, decrypt: false, fixedTPM: true });
    expect(parsePublic(fixture('ak-rsapss.pub')).rsa?.scheme).toEqual({
      scheme: 'rsapss',
      hashAlg: 'sha256',
    });
    const app = parsePublic(fixture('app-rsa.pub'));
    expect(app.rsa?.scheme).toEqual({ scheme: 'rsassa', hashAlg: 'sha256' });
    expect(app.attributes).toMatchObject({
      fixedTPM: true,
      fixedParent: true,
      sensitiveDataOrigin: true,
      userWithAuth: true,
      sign: true,
      restricted: false,
    });
  });

  it('Name changes with any field and re-marshals edited fields', () => {
    const pub = parsePublic(fixture('app-ecc.pub'));
    const edited = { ...pub, objectAttributes: pub.objectAttributes | (1 << 10) };
    expect(hex(objectName(edited))).not.toBe(hex(objectName(pub)));
    expect(parseTpmtPublic(marshalTpmtPublic(edited)).attributes.noDA).toBe(true);
  });

  it('rejects truncated, trailing, inconsistent and unsupported input with typed codes', () => {
    const bytes = fixture('ak-ecc.pub');
    for (let n = 0; n < bytes.length; n++) {
      expect(codeOf(() => parsePublic(bytes.subarray(0, n)))).toBe('truncated');
    }
    expect(codeOf(() => parsePublic(Uint8Array.from([...bytes, 0])))).toBe('trailing_data');
    // Size prefix one smaller than the structure: one byte is left outside the TPM2B.
    const shorter = Uint8Array.from(bytes);
    shorter[1] = (shorter[1] as number) - 1;
    expect(codeOf(() => parsePublic(shorter))).toBe('trailing_data');
    // Size prefix one larger, with a byte appended: the TPMT_PUBLIC leaves a byte unused.
    const larger = Uint8Array.from([...bytes, 0]);
    larger[1] = (larger[1] as number) + 1;
    expect(codeOf(() => parsePublic(larger))).toBe('trailing_data');
    expect(codeOf(() => parsePublic(Uint8Array.of(0, 0)))).toBe('malformed');
    // KEYEDHASH type
    const keyed = Uint8Array.from(bytes);
    keyed[2] = 0;
    keyed[3] = 8;
    expect(codeOf(() => parsePublic(keyed))).toBe('unsupported_algorithm');
    // authPolicy size 65 > sizeof(TPMU_HA)
    const big = Uint8Array.from(bytes);
    big[10] = 0;
    big[11] = 65;
    expect(codeOf(() => parsePublic(big))).toBe('oversized');
  });

  it('refuses to turn templates or off-curve points into keys', () => {
    const pub = parsePublic(fixture('ak-ecc.pub'));
    const ecc = pub.ecc!;
    expect(codeOf(() => publicToKeyObject({ ...pub, ecc: { ...ecc, x: new Uint8Array(0) } }))).toBe(
      'invalid_key',
    );
    const y = Uint8Array.from(ecc.y);
    y[31] = (y[31] as number) ^ 1;
    expect(codeOf(() => publicToKeyObject({ ...pub, ecc: { ...ecc, y } }))).toBe('invalid_key');
    const rsa = parsePublic(fixture('ak-rsa.pub'));
    expect(
      codeOf(() => publicToKeyObject({ ...rsa, rsa: { ...rsa.rsa!, modulus: new Uint8Array(255) } })),
    ).toBe('invalid_key');
  });

  it('the key cache hands out copies and separates different keys', () => {
    const a = fixture('app-ecc.pub');
    const der = publicToSpkiDer(a);
    der.fill(0);
    expect(hex(publicToSpkiDer(a))).toBe(hex(opensslSpkiDer('app-ecc.pem')));
    expect(keyIdOfPublic(a)).not.toBe(keyIdOfPublic(fixture('ak-ecc.pub')));
    expect(keyIdOfPublic(a)).toBe(keyIdOfPublic(parsePublic(a)));
  });

  it('keyIdFromSpki canonicalises encodings and rejects non-keys', () => {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const der = publicKey.export({ format: 'der', type: 'spki' });
    const expected = createHash('sha256').update(der).digest('hex');
    expect(keyIdFromSpki(new Uint8Array(der))).toBe(expected);
    expect(keyIdFromSpki(publicKey)).toBe(expected);
    expect(keyIdFromSpki(privateKey)).toBe(expected);
    expect(codeOf(() => keyIdFromSpki(Uint8Array.of(1, 2, 3)))).toBe('invalid_key');
  });
});
