import { createHash } from 'node:crypto';
import { type AddressInfo, createServer } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SwtpmInstance, startSwtpm, Tpm, TpmError, type TpmKey } from '../src/index.js';
import { tpmLoaded } from './helpers.js';

let swtpm: SwtpmInstance;
let tpm: Tpm;
let key: TpmKey;
const digest = createHash('sha256').update('x').digest();

beforeAll(async () => {
  swtpm = await startSwtpm({ ekCert: false });
  tpm = await Tpm.open({ tcti: swtpm.tcti });
  key = await tpm.createSigningKey({ alg: 'ecc-p256' });
});

afterAll(async () => {
  await tpm?.close();
  await swtpm?.stop();
});

async function rejection(p: Promise<unknown>): Promise<TpmError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TpmError);
  return err as TpmError;
}

describe('opening', () => {
  it('rejects a TCTI module that does not exist', async () => {
    const err = await rejection(Tpm.open({ tcti: 'no-such-tcti-module:foo' }));
    expect(err.code).toBe('tpm_error');
    expect(err.command).toBe('Tss2_TctiLdr_Initialize');
    expect(err.rc).not.toBe(0);
    expect(err.rcText).not.toBe('');
  });

  it('rejects a TPM that does not listen', async () => {
    // A port that was free a moment ago: nothing answers there.
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as AddressInfo).port;
    await new Promise((r) => srv.close(r));
    const err = await rejection(Tpm.open({ tcti: `swtpm:host=127.0.0.1,port=${port}` }));
    expect(err.code).toBe('tpm_error');
    expect(err.rc).not.toBe(0);
  });

  it('rejects a non-string tcti', async () => {
    const err = await rejection(Tpm.open({ tcti: 42 as unknown as string }));
    expect(err.code).toBe('invalid_argument');
  });
});

describe('bad input never reaches the TPM as garbage', () => {
  it('rejects truncated, padded and random key blobs with invalid_argument', async () => {
    const blob = key.blob as Uint8Array;
    for (const bad of [
      blob.subarray(0, blob.length - 1),
      blob.subarray(0, 10),
      new Uint8Array(),
      Buffer.concat([blob, Buffer.from([0])]),
    ]) {
      const err = await rejection(tpm.loadKey(bad));
      expect(err.code).toBe('invalid_argument');
      expect(err.message).toMatch(/blob/);
    }
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 600 }), async (bytes) => {
        const err = await tpm.loadKey(bytes).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(TpmError);
      }),
      { numRuns: 200 },
    );
  });

  it('rejects a well-formed blob whose private part was tampered with (TPM integrity check)', async () => {
    const blob = Uint8Array.from(key.blob as Uint8Array);
    blob[20] = (blob[20] as number) ^ 0xff;
    const err = await rejection(tpm.loadKey(blob));
    expect(err.code).toBe('tpm_error');
    expect(err.command).toBe('TPM2_Load(key)');
    expect(err.rcText).toMatch(/integrity|size|value/i);
  });

  it('rejects a persistent handle with nothing behind it', async () => {
    const err = await rejection(tpm.sign({ public: key.public, name: key.name, handle: 0x81000999 }, digest));
    expect(err.code).toBe('tpm_error');
    expect(err.rc).not.toBe(0);
    expect(err.rcText).toMatch(/handle/i);
  });

  it('rejects a non-persistent handle and keys without blob or handle', async () => {
    const e1 = await rejection(tpm.sign({ public: key.public, name: key.name, handle: 0x80000001 }, digest));
    expect(e1.code).toBe('invalid_argument');
    const e2 = await rejection(tpm.sign({ public: key.public, name: key.name }, digest));
    expect(e2.code).toBe('invalid_argument');
    const e3 = await rejection(tpm.evict(0x01c00002));
    expect(e3.code).toBe('invalid_argument');
  });

  it('rejects wrong digest lengths, oversized nonces, bad PCR selections and malformed credentials', async () => {
    expect((await rejection(tpm.sign(key, new Uint8Array(31)))).code).toBe('invalid_argument');
    expect((await rejection(tpm.sign(key, 'abc' as unknown as Uint8Array))).code).toBe('invalid_argument');
    const ak = await tpm.createAk({ alg: 'ecc-p256' });
    expect((await rejection(tpm.certify(key, ak, new Uint8Array(65)))).code).toBe('invalid_argument');
    expect((await rejection(tpm.quote(ak, [{ bank: 'sha256', pcrs: [24] }], new Uint8Array(8)))).code).toBe(
      'invalid_argument',
    );
    expect((await rejection(tpm.quote(ak, [], new Uint8Array(8)))).code).toBe('invalid_argument');
    expect((await rejection(tpm.pcrRead([{ bank: 'md5' as 'sha1', pcrs: [0] }]))).code).toBe(
      'invalid_argument',
    );
    expect((await rejection(tpm.pcrRead([{ bank: 'toString' as 'sha1', pcrs: [0] }]))).code).toBe(
      'invalid_argument',
    );
    // This swtpm has the sha1 and sha256 banks active, not sha384.
    const inactive = await rejection(
      tpm.pcrRead([
        { bank: 'sha256', pcrs: [0] },
        { bank: 'sha384', pcrs: [0] },
      ]),
    );
    expect(inactive.code).toBe('invalid_argument');
    expect(inactive.message).toMatch(/inactive PCR bank/);
    expect((await rejection(tpm.pcrExtend(3, new Uint8Array(20)))).code).toBe('invalid_argument');
    expect(
      (await rejection(tpm.activateCredential(ak, new Uint8Array([0, 5, 1]), new Uint8Array(2)))).code,
    ).toBe('invalid_argument');
    expect((await rejection(tpm.createSigningKey({ alg: 'ed25519' as 'ecc-p256' }))).code).toBe(
      'invalid_argument',
    );
    expect((await rejection(tpm.createSigningKey({ alg: 'ecc-p256', persistAt: 0x80000000 }))).code).toBe(
      'invalid_argument',
    );
    expect((await rejection(tpm.getRandom(-1))).code).toBe('invalid_argument');
    // Restricted keys cannot sign arbitrary digests (no signing oracle through the AK).
    const err = await rejection(tpm.sign(ak, digest));
    expect(err.code).toBe('tpm_error');
    expect(err.command).toBe('TPM2_Sign');
  });

  it('survives random credential blobs and secrets (well-formed sizes reach the TPM and fail there)', async () => {
    const ak = await tpm.createAk({ alg: 'ecc-p256' });
    const tpm2b = (max: number) =>
      fc.uint8Array({ maxLength: max }).map((b) => Uint8Array.from([b.length >> 8, b.length & 0xff, ...b]));
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(tpm2b(120), fc.uint8Array({ maxLength: 140 })),
        fc.oneof(tpm2b(300), fc.uint8Array({ maxLength: 300 })),
        async (credentialBlob, encryptedSecret) => {
          const err = await tpm.activateCredential(ak, credentialBlob, encryptedSecret).then(
            () => undefined,
            (e: unknown) => e,
          );
          expect(err).toBeInstanceOf(TpmError);
          expect(['invalid_argument', 'tpm_error']).toContain((err as TpmError).code);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('still works after all those failures (nothing leaked)', async () => {
    for (let i = 0; i < 5; i++) expect(await tpm.sign(key, digest)).toHaveLength(64);
    expect(tpmLoaded(swtpm.tcti)).toEqual({ transient: [], sessions: [] });
  });
});

describe('lifecycle', () => {
  it('rejects calls on a closed Tpm with code "closed"; close is idempotent', async () => {
    const t = await Tpm.open({ tcti: swtpm.tcti });
    const pending = t.sign(key, digest);
    const closing = t.close();
    expect(t.closed).toBe(true);
    // Commands queued before close() still complete.
    expect(await pending).toHaveLength(64);
    const err = await rejection(t.sign(key, digest));
    expect(err.code).toBe('closed');
    await closing;
    await t.close();
    expect((await rejection(t.info())).code).toBe('closed');
  });

  it('reports a stopped swtpm as a TpmError, never a crash', async () => {
    await swtpm.stop();
    const err = await rejection(tpm.sign(key, digest));
    expect(err.code).toBe('tpm_error');
    expect(err.rc).not.toBe(0);
    // The context stays usable for more failures and for close().
    expect((await rejection(tpm.getRandom(8))).code).toBe('tpm_error');
    await tpm.close();
  });
});
