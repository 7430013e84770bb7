import { createHash, verify } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePublic, publicToKeyObject } from '@geofence/tpm-wire';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SwtpmInstance, startSwtpm, Tpm, TpmError, type TpmKey } from '../src/index.js';

const stateDir = mkdtempSync(join(tmpdir(), 'native-tpm-persist-'));
let swtpm: SwtpmInstance;
let tpm: Tpm;
const HANDLE = 0x81000123;

beforeAll(async () => {
  swtpm = await startSwtpm({ stateDir });
  tpm = await Tpm.open({ tcti: swtpm.tcti });
});

afterAll(async () => {
  await tpm?.close();
  await swtpm?.stop();
  rmSync(stateDir, { recursive: true, force: true });
});

function verifies(key: TpmKey, data: Buffer, sig: Uint8Array): boolean {
  return verify('sha256', data, { key: publicToKeyObject(key.public), dsaEncoding: 'ieee-p1363' }, sig);
}

describe('persistence across an swtpm restart on the same state directory', () => {
  it('keeps persistent keys, key blobs, the EK and its certificate', async () => {
    const persisted = await tpm.createSigningKey({ alg: 'ecc-p256', persistAt: HANDLE });
    expect(persisted.handle).toBe(HANDLE);
    const blobKey = await tpm.createSigningKey({ alg: 'ecc-p256' });
    const ekBefore = Buffer.from(await tpm.ekPublic('rsa-2048'));
    const certBefore = Buffer.from((await tpm.ekCertificate('rsa-2048')) as Uint8Array);
    const permall = join(stateDir, 'tpm', 'tpm2-00.permall');
    const caBefore = swtpm.ekCaCertificates;

    await tpm.close();
    await swtpm.stop();
    expect(existsSync(permall)).toBe(true);
    const setupMtime = statSync(join(stateDir, 'localca', 'issuercert.pem')).mtimeMs;

    swtpm = await startSwtpm({ stateDir });
    tpm = await Tpm.open({ tcti: swtpm.tcti });
    // Not re-manufactured: same CA, same EK, same certificate.
    expect(statSync(join(stateDir, 'localca', 'issuercert.pem')).mtimeMs).toBe(setupMtime);
    expect(swtpm.ekCaCertificates).toEqual(caBefore);
    expect(Buffer.from(await tpm.ekPublic('rsa-2048')).equals(ekBefore)).toBe(true);
    expect(Buffer.from((await tpm.ekCertificate('rsa-2048')) as Uint8Array).equals(certBefore)).toBe(true);

    const data = Buffer.from('after restart');
    const digest = createHash('sha256').update(data).digest();
    // The persistent key, by handle only (no blob).
    const byHandle: TpmKey = { public: persisted.public, name: persisted.name, handle: HANDLE };
    expect(verifies(persisted, data, await tpm.sign(byHandle, digest))).toBe(true);
    // The blob still loads: the storage root key is re-derived from the same owner seed.
    const reloaded = await tpm.loadKey(blobKey.blob as Uint8Array);
    expect(Buffer.from(reloaded.name).equals(Buffer.from(blobKey.name))).toBe(true);
    expect(verifies(blobKey, data, await tpm.sign(blobKey, digest))).toBe(true);
  });

  it('persists an existing key, evicts it, and then rejects the stale handle', async () => {
    await tpm.evict(HANDLE);
    const key = await tpm.createSigningKey({ alg: 'rsa-2048' });
    const persisted = await tpm.persist(key, HANDLE);
    expect(persisted.handle).toBe(HANDLE);
    const digest = createHash('sha256').update('p').digest();
    const sig = await tpm.sign({ public: key.public, name: key.name, handle: HANDLE }, digest);
    expect(verify('sha256', Buffer.from('p'), publicToKeyObject(key.public), sig)).toBe(true);
    // A second persist at an occupied handle is refused by the TPM.
    await expect(tpm.persist(key, HANDLE)).rejects.toMatchObject({
      code: 'tpm_error',
      command: 'TPM2_EvictControl',
    });
    await tpm.evict(HANDLE);
    const err = await tpm
      .sign({ public: key.public, name: key.name, handle: HANDLE }, digest)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TpmError);
    expect((err as TpmError).code).toBe('tpm_error');
    await expect(tpm.evict(HANDLE)).rejects.toBeInstanceOf(TpmError);
  });

  it('uses the CA inside the state directory for the EK certificates', () => {
    const issuer = readFileSync(join(stateDir, 'localca', 'issuercert.pem'), 'utf8');
    expect(swtpm.ekCaCertificates[0]).toBe(issuer);
  });
});

describe('persistent handles are bound to the key Name', () => {
  it('refuses to use a handle that now holds a different key', async () => {
    const first = await tpm.createSigningKey({ alg: 'ecc-p256', persistAt: HANDLE });
    await tpm.evict(HANDLE);
    const second = await tpm.createSigningKey({ alg: 'ecc-p256', persistAt: HANDLE });
    const digest = createHash('sha256').update('n').digest();
    // `first` still names HANDLE, but the TPM has `second` there now.
    const stale: TpmKey = { public: first.public, name: first.name, handle: HANDLE };
    await expect(tpm.sign(stale, digest)).rejects.toMatchObject({ code: 'invalid_argument' });
    // Key objects that carry a blob and a handle use the handle, after the same check.
    await expect(tpm.sign(first, digest)).rejects.toMatchObject({ code: 'invalid_argument' });
    expect(verifies(second, Buffer.from('n'), await tpm.sign(second, digest))).toBe(true);
    await tpm.evict(HANDLE);
  });
});

describe('EK templates', () => {
  it('re-creates swtpm’s P-384 EK from the TCG H-3 template once the persistent copy is gone', async () => {
    const persisted = Buffer.from(await tpm.ekPublic('ecc-p384'));
    const pub = parsePublic(persisted);
    expect(pub.ecc?.curve).toBe('p384');
    expect(pub.nameAlg).toBe('sha384');
    await tpm.evict(0x81010016);
    // Now it comes from TPM2_CreatePrimary with our template: identical only if the template is.
    expect(Buffer.from(await tpm.ekPublic('ecc-p384')).toString('hex')).toBe(persisted.toString('hex'));
  });
});
