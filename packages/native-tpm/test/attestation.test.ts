import { createHash, generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  decodeObjectAttributes,
  makeCredential,
  marshalPublic,
  objectName,
  parseAttest,
  parsePublic,
  pcrDigest,
  publicToKeyObject,
  publicToSpkiDer,
  TpmWireError,
  verifyCertify,
  verifyQuote,
} from '@geofence/tpm-wire';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type KeyAlg,
  type PcrSelection,
  type SwtpmInstance,
  startSwtpm,
  Tpm,
  TpmError,
  type TpmKey,
} from '../src/index.js';
import { certPem, scratchDir, spkiPem, tool, tpmLoaded } from './helpers.js';

let swtpm: SwtpmInstance;
let tpm: Tpm;
const scratch = scratchDir();
const aks = {} as Record<KeyAlg, TpmKey>;
let appKey: TpmKey;

beforeAll(async () => {
  swtpm = await startSwtpm();
  tpm = await Tpm.open({ tcti: swtpm.tcti });
  aks['rsa-2048'] = await tpm.createAk({ alg: 'rsa-2048' });
  aks['ecc-p256'] = await tpm.createAk({ alg: 'ecc-p256' });
  appKey = await tpm.createSigningKey({ alg: 'ecc-p256' });
});

afterAll(async () => {
  await tpm?.close();
  await swtpm?.stop();
  scratch.rm();
});

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe.each(['rsa-2048', 'ecc-p256'] as const)('AK %s', (alg) => {
  it('is a restricted signing key (fixedTPM, fixedParent, sensitiveDataOrigin)', () => {
    const pub = parsePublic(aks[alg].public);
    expect(decodeObjectAttributes(pub.objectAttributes)).toMatchObject({
      fixedTPM: true,
      fixedParent: true,
      sensitiveDataOrigin: true,
      userWithAuth: true,
      restricted: true,
      sign: true,
      decrypt: false,
    });
    expect(hex(aks[alg].name)).toBe(hex(objectName(pub)));
  });

  it('certifies the AppSK: tpm-wire checks the attested Name and the AK signature', async () => {
    const nonce = randomBytes(32);
    const { attest, signature } = await tpm.certify(appKey, aks[alg], nonce);
    const verified = verifyCertify({
      attest,
      signature,
      akPublic: aks[alg].public,
      objectPublic: appKey.public,
      qualifyingData: nonce,
    });
    expect(hex(verified.certify?.name ?? new Uint8Array())).toBe(hex(appKey.name));
    // Negative checks: another object, another nonce, a flipped signature byte.
    const other = await tpm.createSigningKey({ alg: 'ecc-p256' });
    expect(() =>
      verifyCertify({
        attest,
        signature,
        akPublic: aks[alg].public,
        objectPublic: other.public,
        qualifyingData: nonce,
      }),
    ).toThrow(expect.objectContaining({ code: 'name_mismatch' }));
    expect(() =>
      verifyCertify({
        attest,
        signature,
        akPublic: aks[alg].public,
        objectPublic: appKey.public,
        qualifyingData: randomBytes(32),
      }),
    ).toThrow(expect.objectContaining({ code: 'nonce_mismatch' }));
    const bad = Uint8Array.from(signature);
    bad[bad.length - 1] = (bad[bad.length - 1] as number) ^ 1;
    expect(() =>
      verifyCertify({
        attest,
        signature: bad,
        akPublic: aks[alg].public,
        objectPublic: appKey.public,
        qualifyingData: nonce,
      }),
    ).toThrow(TpmWireError);
  });

  it('quotes PCRs: tpm2_checkquote and tpm-wire verify it; its PCR digest matches pcrRead', async () => {
    const selection: PcrSelection = [
      { bank: 'sha256', pcrs: [0, 1, 2, 3, 7, 16] },
      { bank: 'sha1', pcrs: [0, 7] },
    ];
    await tpm.pcrExtend(16, createHash('sha256').update(`quote ${alg}`).digest());
    const nonce = randomBytes(20);
    const { attest, signature, pcrValues } = await tpm.quote(aks[alg], selection, nonce);
    const read = await tpm.pcrRead(selection);
    expect(Object.keys(read.sha256 ?? {})).toHaveLength(6);
    expect(Object.keys(read.sha1 ?? {})).toHaveLength(2);
    const parsed = parseAttest(attest);
    expect(parsed.type).toBe('quote');
    expect(hex(parsed.quote?.pcrDigest ?? new Uint8Array())).toBe(hex(pcrDigest(selection, read, 'sha256')));
    expect(hex(pcrValues.sha256?.[16] ?? new Uint8Array())).toBe(hex(read.sha256?.[16] ?? new Uint8Array(1)));
    verifyQuote({ attest, signature, akPublic: aks[alg].public, qualifyingData: nonce, pcrValues: read });

    // tpm2_checkquote: AK public as PEM, attest and TPMT_SIGNATURE (tss format) as files.
    const tag = `${alg}-${hex(randomBytes(3))}`;
    const akPem = scratch.file(`ak-${tag}.pem`, spkiPem(publicToKeyObject(aks[alg].public)));
    const msg = scratch.file(`quote-${tag}.attest`, attest);
    const sig = scratch.file(`quote-${tag}.sig`, signature);
    const ok = tool('tpm2_checkquote', ['-u', akPem, '-m', msg, '-s', sig, '-q', hex(nonce), '-g', 'sha256']);
    expect(ok.ok, ok.out).toBe(true);
    const wrongNonce = tool('tpm2_checkquote', [
      '-u',
      akPem,
      '-m',
      msg,
      '-s',
      sig,
      '-q',
      hex(randomBytes(20)),
    ]);
    expect(wrongNonce.ok).toBe(false);

    // After another extend, the old quote no longer matches the PCRs.
    await tpm.pcrExtend(16, createHash('sha256').update('later').digest());
    const later = await tpm.pcrRead(selection);
    expect(() =>
      verifyQuote({ attest, signature, akPublic: aks[alg].public, qualifyingData: nonce, pcrValues: later }),
    ).toThrow(expect.objectContaining({ code: 'pcr_digest_mismatch' }));
  });
});

describe('credential activation (tpm-wire MakeCredential → TPM2_ActivateCredential)', () => {
  describe.each(['rsa-2048', 'ecc-p256', 'ecc-p384'] as const)('EK %s', (ekAlg) => {
    it('returns the secret for the AK the credential names', async () => {
      const ekPublic = await tpm.ekPublic(ekAlg);
      for (const akAlg of ['rsa-2048', 'ecc-p256'] as const) {
        const secret = randomBytes(32);
        const { credentialBlob, encryptedSecret } = makeCredential({
          ekPublic,
          objectName: aks[akAlg].name,
          secret,
        });
        const out = await tpm.activateCredential(aks[akAlg], credentialBlob, encryptedSecret, { ekAlg });
        expect(hex(out)).toBe(hex(secret));
      }
      // AK, EK, the policy session and the salted session were all flushed.
      expect(tpmLoaded(swtpm.tcti)).toEqual({ transient: [], sessions: [] });
    });

    it('fails for an AK with a different Name', async () => {
      const ekPublic = await tpm.ekPublic(ekAlg);
      const { credentialBlob, encryptedSecret } = makeCredential({
        ekPublic,
        objectName: aks['rsa-2048'].name,
        secret: randomBytes(32),
      });
      const err = await tpm
        .activateCredential(aks['ecc-p256'], credentialBlob, encryptedSecret, { ekAlg })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TpmError);
      expect(err).toMatchObject({ code: 'tpm_error', command: 'TPM2_ActivateCredential' });
      expect((err as TpmError).rc).not.toBe(0);
      expect((err as TpmError).rcText).toMatch(/integrity|value|size/i);
      // The failure path flushes too.
      expect(tpmLoaded(swtpm.tcti)).toEqual({ transient: [], sessions: [] });
    });
  });

  it('fails when the credential was made for another TPM’s EK', async () => {
    // Same template, different key: an EK this TPM does not hold.
    const mine = parsePublic(await tpm.ekPublic('rsa-2048'));
    const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const n = Buffer.from(publicKey.export({ format: 'jwk' }).n as string, 'base64url');
    const foreign = marshalPublic({
      ...mine,
      rsa: { ...(mine.rsa as NonNullable<typeof mine.rsa>), modulus: n },
    });
    const { credentialBlob, encryptedSecret } = makeCredential({
      ekPublic: foreign,
      objectName: aks['rsa-2048'].name,
      secret: randomBytes(32),
    });
    await expect(
      tpm.activateCredential(aks['rsa-2048'], credentialBlob, encryptedSecret),
    ).rejects.toMatchObject({
      code: 'tpm_error',
      command: 'TPM2_ActivateCredential',
    });
  });
});

describe('parameter encryption', () => {
  it('keeps the activated secret off the wire (EK-salted session encrypts the response)', async () => {
    // The pcap TCTI wraps the swtpm TCTI and records every command and response byte.
    const pcapFile = join(scratch.dir, 'tpm.pcap');
    process.env.TCTI_PCAP_FILE = pcapFile;
    const traced = await Tpm.open({ tcti: `pcap:${swtpm.tcti}` });
    delete process.env.TCTI_PCAP_FILE;
    const secret = randomBytes(32);
    const ak = aks['ecc-p256'];
    let made: ReturnType<typeof makeCredential>;
    try {
      made = makeCredential({ ekPublic: await traced.ekPublic('rsa-2048'), objectName: ak.name, secret });
      const out = await traced.activateCredential(ak, made.credentialBlob, made.encryptedSecret);
      expect(hex(out)).toBe(hex(secret));
    } finally {
      await traced.close();
    }
    const wire = readFileSync(pcapFile);
    // The capture works: the credential blob we sent is in it ...
    expect(wire.includes(Buffer.from(made.credentialBlob))).toBe(true);
    // ... but the secret the TPM sent back is not.
    expect(wire.includes(secret)).toBe(false);
  });
});

describe('endorsement key', () => {
  it.each([
    'rsa-2048',
    'ecc-p384',
  ] as const)('reads the %s EK certificate from NV; it chains to the swtpm local CA (openssl verify) and certifies ekPublic', async (alg) => {
    const cert = await tpm.ekCertificate(alg);
    expect(cert).not.toBeNull();
    const der = cert as Uint8Array;
    const x509 = new X509Certificate(der);
    const ekPublic = await tpm.ekPublic(alg);
    const certSpki = x509.publicKey.export({ type: 'spki', format: 'der' });
    expect(hex(certSpki)).toBe(hex(publicToSpkiDer(ekPublic)));

    expect(swtpm.ekCaCertificates).toHaveLength(2);
    const [issuer, root] = swtpm.ekCaCertificates as [string, string];
    const rootFile = scratch.file('root.pem', root);
    const issuerFile = scratch.file('issuer.pem', issuer);
    const ekFile = scratch.file(`ek-${alg}.pem`, certPem(der));
    const ok = tool('openssl', ['verify', '-CAfile', rootFile, '-untrusted', issuerFile, ekFile]);
    expect(ok.ok, ok.out).toBe(true);
    // Without the issuer the chain is incomplete: the check can fail.
    const incomplete = tool('openssl', ['verify', '-CAfile', rootFile, ekFile]);
    expect(incomplete.ok).toBe(false);
  });

  it('returns the TCG default EK for both algorithms (restricted decryption key with the EK policy)', async () => {
    for (const alg of ['rsa-2048', 'ecc-p256'] as const) {
      const pub = parsePublic(await tpm.ekPublic(alg));
      expect(pub.type).toBe(alg === 'rsa-2048' ? 'rsa' : 'ecc');
      expect(decodeObjectAttributes(pub.objectAttributes)).toMatchObject({
        restricted: true,
        decrypt: true,
        sign: false,
        adminWithPolicy: true,
        userWithAuth: false,
      });
      expect(hex(pub.authPolicy)).toBe('837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa');
      // Deterministic: the same key every time.
      expect(hex(await tpm.ekPublic(alg))).toBe(hex(marshalPublic(pub)));
    }
  });

  it('has no P-256 EK certificate on swtpm (its ECC EK is P-384)', async () => {
    expect(await tpm.ekCertificate('ecc-p256')).toBeNull();
  });
});
