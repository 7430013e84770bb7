/**
 * Exercises every addon entry point, success and failure paths, for memory checkers
 * (ASan/LeakSanitizer or valgrind). Not a vitest file: run it directly, e.g.
 *   GEOFENCE_TPM_ADDON=/path/to/asan/geofence_tpm.node LD_PRELOAD=$(gcc -print-file-name=libasan.so) \
 *     node --import tsx packages/native-tpm/test/tools/exercise.ts [rounds]
 */
import { createHash, randomBytes } from 'node:crypto';
import { makeCredential } from '@geofence/tpm-wire';
import { startSwtpm, Tpm } from '../../src/index.js';

const rounds = Number(process.argv[2] ?? 3);
const swtpm = await startSwtpm();
const digest = createHash('sha256').update('x').digest();
const swallow = (p: Promise<unknown>) =>
  p.then(
    () => 'ok',
    (e: unknown) => (e as { code?: string }).code ?? 'error',
  );
let failures = 0;
try {
  for (let r = 0; r < rounds; r++) {
    const tpm = await Tpm.open({ tcti: swtpm.tcti, flushTransients: r === 0 });
    await tpm.info();
    await tpm.getRandom(100);
    const sel = [{ bank: 'sha256' as const, pcrs: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10] }];
    await tpm.pcrRead(sel);
    await tpm.pcrExtend(16, digest);
    const ecc = await tpm.createSigningKey({ alg: 'ecc-p256' });
    const rsa = await tpm.createSigningKey({ alg: 'rsa-2048' });
    const ak = await tpm.createAk({ alg: 'ecc-p256' });
    await Promise.all(Array.from({ length: 50 }, (_, i) => tpm.sign(i % 2 ? ecc : rsa, digest)));
    await tpm.loadKey(ecc.blob as Uint8Array);
    await tpm.certify(rsa, ak, randomBytes(32));
    await tpm.quote(ak, sel, randomBytes(32));
    for (const ekAlg of ['rsa-2048', 'ecc-p256', 'ecc-p384'] as const) {
      const ekPublic = await tpm.ekPublic(ekAlg);
      await tpm.ekCertificate(ekAlg);
      const c = makeCredential({ ekPublic, objectName: ak.name, secret: randomBytes(32) });
      await tpm.activateCredential(ak, c.credentialBlob, c.encryptedSecret, { ekAlg });
      const wrong = makeCredential({ ekPublic, objectName: ecc.name, secret: randomBytes(32) });
      if (
        (await swallow(
          tpm.activateCredential(ak, wrong.credentialBlob, wrong.encryptedSecret, { ekAlg }),
        )) === 'ok'
      )
        failures++;
    }
    const p = await tpm.persist(ecc, 0x81000200);
    await tpm.sign({ public: p.public, name: p.name, handle: 0x81000200 }, digest);
    await tpm.evict(0x81000200);
    // A handle that holds another key than key.name says.
    const other = await tpm.createSigningKey({ alg: 'ecc-p256', persistAt: 0x81000200 });
    if ((await swallow(tpm.sign({ public: p.public, name: p.name, handle: 0x81000200 }, digest))) === 'ok')
      failures++;
    await tpm.sign(other, digest);
    await tpm.evict(0x81000200);
    // Failure paths.
    const blob = ecc.blob as Uint8Array;
    const bad = Uint8Array.from(blob);
    bad[20] = (bad[20] as number) ^ 1;
    const outcomes = await Promise.all([
      swallow(tpm.loadKey(blob.subarray(0, 30))),
      swallow(tpm.loadKey(bad)),
      swallow(tpm.sign({ public: ecc.public, name: ecc.name, handle: 0x81000999 }, digest)),
      swallow(tpm.sign(ak, digest)),
      swallow(tpm.evict(0x81000999)),
      swallow(tpm.activateCredential(ak, randomBytes(40), randomBytes(10))),
      swallow(
        tpm
          .createSigningKey({ alg: 'ecc-p256', persistAt: 0x81000200 })
          .then((k) => tpm.persist(k, 0x81000200)),
      ),
    ]);
    await swallow(tpm.evict(0x81000200));
    if (outcomes.includes('ok')) failures++;
    await tpm.close();
    await swallow(tpm.sign(ecc, digest));
  }
  await swallow(Tpm.open({ tcti: 'no-such-tcti' }));
  const dead = await Tpm.open({ tcti: swtpm.tcti });
  await swtpm.stop();
  await swallow(dead.getRandom(8));
  await dead.close();
} finally {
  await swtpm.stop();
}
console.log(failures === 0 ? 'exercise: ok' : `exercise: ${failures} unexpected outcome(s)`);
process.exitCode = failures === 0 ? 0 : 1;
