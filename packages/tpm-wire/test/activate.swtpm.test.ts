import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCredential, objectName, objectNameHex, parsePublic } from '../src/index.js';
import { hex } from './helpers.js';
import { startTestTpm, type TestTpm, toolsCredentialFile } from './swtpm.js';

const STORAGE_KEYS = [
  ['ecc384', 'aes256cfb', 'sha384'],
  ['rsa3072', 'aes256cfb', 'sha384'],
  ['ecc521', 'aes256cfb', 'sha512'],
] as const;

let tpm: TestTpm;
beforeAll(async () => {
  tpm = await startTestTpm();
  for (const alg of ['rsa', 'ecc'] as const) {
    tpm.tool('tpm2_createek', ['-G', alg, '-c', `ek-${alg}.ctx`, '-u', `ek-${alg}.pub`, '-f', 'tss']);
    const scheme = alg === 'rsa' ? 'rsassa' : 'ecdsa';
    const akArgs = ['-C', `ek-${alg}.ctx`, '-G', alg, '-g', 'sha256', '-s', scheme];
    tpm.tool('tpm2_createak', [
      ...akArgs,
      '-c',
      `ak-${alg}.ctx`,
      '-u',
      `ak-${alg}.pub`,
      '-n',
      `ak-${alg}.name`,
    ]);
  }
  // Larger storage keys as credential-protecting keys (any restricted decryption key works for
  // ActivateCredential): they exercise SHA-384/512 nameAlgs, AES-256 and P-384/P-521/RSA-3072.
  for (const [g, sym, h] of STORAGE_KEYS) {
    tpm.tool('tpm2_createprimary', ['-C', 'o', '-g', h, '-G', `${g}:${sym}`, '-c', `sk-${g}.ctx`]);
    tpm.tool('tpm2_readpublic', ['-c', `sk-${g}.ctx`, '-o', `sk-${g}.pub`]);
  }
});
afterAll(async () => {
  await tpm?.stop();
});

const read = (f: string) => new Uint8Array(readFileSync(join(tpm.dir, f)));

/** TPM2_ActivateCredential through tpm2-tools with the EK's PolicySecret(TPM_RH_ENDORSEMENT) session. */
function activate(ak: string, ek: string, credFile: string): Uint8Array {
  tpm.tool('tpm2_startauthsession', ['--policy-session', '-S', 'session.ctx']);
  try {
    tpm.tool('tpm2_policysecret', ['-S', 'session.ctx', '-c', 'e']);
    tpm.tool('tpm2_activatecredential', [
      '-c',
      `${ak}.ctx`,
      '-C',
      `${ek}.ctx`,
      '-i',
      credFile,
      '-o',
      'activated.bin',
      '-P',
      'session:session.ctx',
    ]);
  } finally {
    tpm.tool('tpm2_flushcontext', ['session.ctx']);
  }
  return read('activated.bin');
}

describe('makeCredential against a real TPM (swtpm + tpm2_activatecredential)', () => {
  for (const alg of ['rsa', 'ecc'] as const) {
    it(`${alg} EK: the TPM recovers the secret for the right AK Name`, () => {
      const ekPublic = read(`ek-${alg}.pub`);
      const akPublic = read(`ak-${alg}.pub`);
      expect(objectNameHex(akPublic)).toBe(hex(read(`ak-${alg}.name`)));
      const secret = new Uint8Array(randomBytes(32));
      const { credentialBlob, encryptedSecret } = makeCredential({
        ekPublic: parsePublic(ekPublic),
        objectName: objectName(akPublic),
        secret,
      });
      writeFileSync(join(tpm.dir, 'cred.bin'), toolsCredentialFile(credentialBlob, encryptedSecret));
      expect(hex(activate(`ak-${alg}`, `ek-${alg}`, 'cred.bin'))).toBe(hex(secret));
    });

    it(`${alg} EK: a credential made for a different Name is refused by the TPM`, () => {
      const other = alg === 'rsa' ? 'ecc' : 'rsa';
      const { credentialBlob, encryptedSecret } = makeCredential({
        ekPublic: read(`ek-${alg}.pub`),
        objectName: objectName(read(`ak-${other}.pub`)),
        secret: new Uint8Array(randomBytes(16)),
      });
      writeFileSync(join(tpm.dir, 'cred-wrong.bin'), toolsCredentialFile(credentialBlob, encryptedSecret));
      // TPM_RC_INTEGRITY from the outer HMAC over (encIdentity ‖ Name).
      expect(() => activate(`ak-${alg}`, `ek-${alg}`, 'cred-wrong.bin')).toThrow(/integrity check failed/);
    });

    it(`${alg} EK: a credential for another EK is refused`, () => {
      const other = alg === 'rsa' ? 'ecc' : 'rsa';
      const { credentialBlob, encryptedSecret } = makeCredential({
        ekPublic: read(`ek-${other}.pub`),
        objectName: objectName(read(`ak-${alg}.pub`)),
        secret: new Uint8Array(randomBytes(16)),
      });
      writeFileSync(join(tpm.dir, 'cred-ek.bin'), toolsCredentialFile(credentialBlob, encryptedSecret));
      expect(() => activate(`ak-${alg}`, `ek-${alg}`, 'cred-ek.bin')).toThrow(
        /Esys_ActivateCredential\(0x[0-9A-F]+\)/,
      );
    });
  }

  for (const [g, , h] of STORAGE_KEYS) {
    it(`${g} storage key (${h}, AES-256-CFB) protects a credential the TPM can activate`, () => {
      const keyPublic = parsePublic(read(`sk-${g}.pub`));
      expect(keyPublic.nameAlg).toBe(h);
      expect((keyPublic.rsa ?? keyPublic.ecc)?.symmetric).toEqual({
        algorithm: 'aes',
        keyBits: 256,
        mode: 'cfb',
      });
      const secret = new Uint8Array(randomBytes(h === 'sha384' ? 48 : 64));
      const { credentialBlob, encryptedSecret } = makeCredential({
        ekPublic: keyPublic,
        objectName: objectName(read('ak-ecc.pub')),
        secret,
      });
      writeFileSync(join(tpm.dir, `cred-${g}.bin`), toolsCredentialFile(credentialBlob, encryptedSecret));
      tpm.tool('tpm2_activatecredential', [
        '-c',
        'ak-ecc.ctx',
        '-C',
        `sk-${g}.ctx`,
        '-i',
        `cred-${g}.bin`,
        '-o',
        `act-${g}.bin`,
      ]);
      expect(hex(read(`act-${g}.bin`))).toBe(hex(secret));
    });
  }
});
