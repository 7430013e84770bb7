import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, type KeyObject, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  makeCredential,
  marshalPublic,
  marshalTpmtPublic,
  objectName,
  parsePublic,
  parseTpmtPublic,
  type TpmPublic,
} from '../src/index.js';
import { codeOf, fixture, hex } from './helpers.js';
import { softwareActivate } from './softactivate.js';

/** TCG default EK attributes and policy, on a software key (the TPM is not the subject here). */
function softwareEk(kind: 'rsa' | 'ecc'): { ek: TpmPublic; privateKey: KeyObject } {
  const template = parsePublic(fixture(kind === 'rsa' ? 'ek-rsa.pub' : 'ek-ecc.pub'));
  if (kind === 'rsa') {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const n = new Uint8Array(Buffer.from(publicKey.export({ format: 'jwk' }).n!, 'base64url'));
    const ek = parseTpmtPublic(marshalTpmtPublic({ ...template, rsa: { ...template.rsa!, modulus: n } }));
    return { ek, privateKey };
  }
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' });
  const x = new Uint8Array(Buffer.from(jwk.x!, 'base64url'));
  const y = new Uint8Array(Buffer.from(jwk.y!, 'base64url'));
  const ek = parseTpmtPublic(marshalTpmtPublic({ ...template, ecc: { ...template.ecc!, x, y } }));
  return { ek, privateKey };
}

const tmp = mkdtempSync(join(tmpdir(), 'tpm-wire-cred-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('makeCredential (software EKs)', () => {
  const akName = objectName(fixture('ak-rsa.pub'));
  const otherName = objectName(fixture('ak-ecc.pub'));

  for (const kind of ['rsa', 'ecc'] as const) {
    it(`${kind}: our blobs open with an independent software ActivateCredential, only for the right Name`, () => {
      const { ek, privateKey } = softwareEk(kind);
      const secret = new Uint8Array(randomBytes(32));
      const { credentialBlob, encryptedSecret } = makeCredential({
        ekPublic: ek,
        objectName: akName,
        secret,
      });
      // TPM2B_ID_OBJECT = size ‖ TPM2B_DIGEST(HMAC-SHA256) ‖ encIdentity(2 + 32)
      expect(credentialBlob.length).toBe(2 + 2 + 32 + 34);
      expect(hex(credentialBlob.subarray(0, 4))).toBe('00440020');
      expect(encryptedSecret.length).toBe(kind === 'rsa' ? 2 + 256 : 2 + 2 + 32 + 2 + 32);
      expect(hex(softwareActivate(ek, privateKey, akName, credentialBlob, encryptedSecret))).toBe(
        hex(secret),
      );
      expect(() => softwareActivate(ek, privateKey, otherName, credentialBlob, encryptedSecret)).toThrow(
        'integrity check failed',
      );
      // Randomised: two runs never produce the same blobs.
      const again = makeCredential({ ekPublic: marshalPublic(ek), objectName: akName, secret });
      expect(hex(again.encryptedSecret)).not.toBe(hex(encryptedSecret));
    });

    it(`${kind}: tpm2_makecredential --tcti none output opens with the same software ActivateCredential`, () => {
      const { ek, privateKey } = softwareEk(kind);
      const secret = new Uint8Array(randomBytes(20));
      writeFileSync(join(tmp, `ek-${kind}.pub`), marshalPublic(ek));
      writeFileSync(join(tmp, 'secret.bin'), secret);
      execFileSync(
        'tpm2_makecredential',
        ['--tcti', 'none', '-u', `ek-${kind}.pub`, '-s', 'secret.bin', '-n', hex(akName), '-o', 'cred.out'],
        { cwd: tmp, stdio: 'ignore' },
      );
      const file = new Uint8Array(readFileSync(join(tmp, 'cred.out')));
      expect(hex(file.subarray(0, 8))).toBe('badcc0de00000001');
      const idLen = ((file[8] as number) << 8) | (file[9] as number);
      const credentialBlob = file.subarray(8, 10 + idLen);
      const encryptedSecret = file.subarray(10 + idLen);
      expect(hex(softwareActivate(ek, privateKey, akName, credentialBlob, encryptedSecret))).toBe(
        hex(secret),
      );
      // Same layout as ours for the same inputs.
      const ours = makeCredential({ ekPublic: ek, objectName: akName, secret });
      expect(ours.credentialBlob.length).toBe(credentialBlob.length);
      expect(ours.encryptedSecret.length).toBe(encryptedSecret.length);
    });
  }

  it('refuses non-EK keys, bad Names and bad secret sizes', () => {
    const { ek } = softwareEk('rsa');
    const secret = new Uint8Array(32);
    expect(
      codeOf(() => makeCredential({ ekPublic: fixture('ak-rsa.pub'), objectName: akName, secret })),
    ).toBe('invalid_ek');
    const noSym = { ...ek, rsa: { ...ek.rsa!, symmetric: null } };
    expect(codeOf(() => makeCredential({ ekPublic: noSym, objectName: akName, secret }))).toBe('invalid_ek');
    const cbc = {
      ...ek,
      rsa: { ...ek.rsa!, symmetric: { algorithm: 'aes', keyBits: 128, mode: 'cbc' } as const },
    };
    expect(codeOf(() => makeCredential({ ekPublic: cbc, objectName: akName, secret }))).toBe('invalid_ek');
    expect(codeOf(() => makeCredential({ ekPublic: ek, objectName: akName.subarray(1), secret }))).toBe(
      'invalid_argument',
    );
    expect(
      codeOf(() => makeCredential({ ekPublic: ek, objectName: akName, secret: new Uint8Array(33) })),
    ).toBe('invalid_argument');
    expect(
      codeOf(() => makeCredential({ ekPublic: ek, objectName: akName, secret: new Uint8Array(0) })),
    ).toBe('invalid_argument');
    expect(
      codeOf(() =>
        makeCredential({ ekPublic: fixture('ek-rsa.pub').subarray(3), objectName: akName, secret }),
      ),
    ).toMatch(/truncated|trailing_data|unsupported_algorithm|malformed|oversized/);
  });
});
