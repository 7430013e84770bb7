/**
 * @geofence/native-tpm benchmark on swtpm (SPEC §13, issue 3 item 6).
 *
 * For each command — sign (ECC P-256, RSA-2048), certify, quote (sha256 PCRs 0-7) and
 * activateCredential (RSA EK) — runs sequential calls and reports:
 *   - `<op>.total.p50|p99`: wall time of one awaited call, as the caller sees it;
 *   - `<op>.esapi.p50|p99`: time spent inside ESAPI calls (the TPM round trips), measured by the addon;
 *   - `<op>.overhead.p50`: total − ESAPI per call (queueing, thread hop, argument copies, marshalling);
 *   - `<op>.overhead_ratio`: median overhead / median ESAPI time.
 * Plus `sign.ecc.concurrent200`: throughput of 200 concurrent signs (they are serialised per TPM) and
 * the event-loop delay (p99/max) meanwhile,
 * `sign.ecc.cacheSrk.total.p50` (SRK kept loaded between commands) and `loadKey.mean`.
 *
 * Run: `npm run build -w packages/tpm-wire -w packages/native-tpm && node --import tsx bench/tpm.bench.ts [--json out.json] [--n 200]`
 */
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { startSwtpm, Tpm, type TpmKey } from '@geofence/native-tpm';
import { makeCredential } from '@geofence/tpm-wire';

const args = process.argv.slice(2);
const arg = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const N = Number(arg('--n') ?? 200);
const results: Record<string, { value: number; unit: string }> = {};
const report = (name: string, value: number, unit: string) => {
  results[name] = { value, unit };
  console.log(`${name}: ${Number.isInteger(value) ? value : value.toFixed(3)} ${unit}`);
};

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((s.length - 1) * p))] ?? Number.NaN;
};

const swtpm = await startSwtpm();
const tpm = await Tpm.open({ tcti: swtpm.tcti });
try {
  const ecc = await tpm.createSigningKey({ alg: 'ecc-p256' });
  const rsa = await tpm.createSigningKey({ alg: 'rsa-2048' });
  const ak = await tpm.createAk({ alg: 'ecc-p256' });
  const ekPublic = await tpm.ekPublic('rsa-2048');
  const digest = createHash('sha256').update('benchmark').digest();
  const pcrs = [{ bank: 'sha256' as const, pcrs: [0, 1, 2, 3, 4, 5, 6, 7] }];

  /** Runs `fn` n times sequentially (after a short warm-up); returns per-call total and ESAPI ms. */
  async function measure(name: string, statName: string, n: number, fn: (i: number) => Promise<unknown>) {
    for (let i = 0; i < 5; i++) await fn(i);
    const total: number[] = [];
    const esapi: number[] = [];
    for (let i = 0; i < n; i++) {
      const before = tpm.stats()[statName]?.esapiMs ?? 0;
      const t0 = performance.now();
      await fn(i);
      total.push(performance.now() - t0);
      esapi.push((tpm.stats()[statName]?.esapiMs ?? 0) - before);
    }
    const overhead = total.map((t, i) => t - (esapi[i] as number));
    report(`${name}.total.p50`, pct(total, 0.5), 'ms');
    report(`${name}.total.p99`, pct(total, 0.99), 'ms');
    report(`${name}.esapi.p50`, pct(esapi, 0.5), 'ms');
    report(`${name}.esapi.p99`, pct(esapi, 0.99), 'ms');
    report(`${name}.overhead.p50`, pct(overhead, 0.5), 'ms');
    report(`${name}.overhead_ratio`, pct(overhead, 0.5) / pct(esapi, 0.5), 'x');
  }

  await measure('sign.ecc', 'sign', N, () => tpm.sign(ecc, digest));
  await measure('sign.rsa', 'sign', N, () => tpm.sign(rsa, digest));
  await measure('certify', 'certify', N, () => tpm.certify(ecc, ak, randomBytes(32)));
  await measure('quote', 'quote', N, () => tpm.quote(ak, pcrs, randomBytes(32)));
  const creds = Array.from({ length: N + 5 }, () =>
    makeCredential({ ekPublic, objectName: ak.name, secret: randomBytes(32) }),
  );
  await measure('activateCredential', 'activateCredential', N, (i) => {
    const c = creds[i % creds.length] as (typeof creds)[number];
    return tpm.activateCredential(ak, c.credentialBlob, c.encryptedSecret);
  });

  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: 200 }, () => tpm.sign(ecc, digest)));
  report('sign.ecc.concurrent200', 200 / ((performance.now() - t0) / 1000), 'signs/s');
  loop.disable();
  // How long the event loop was blocked while the 200 signs ran (perf_hooks histogram, ns → ms).
  report('sign.ecc.concurrent200.eventloop_delay.p99', loop.percentile(99) / 1e6, 'ms');
  report('sign.ecc.concurrent200.eventloop_delay.max', loop.max / 1e6, 'ms');

  // The same sign with the SRK kept loaded between commands (cacheSrk, the default behind a resource
  // manager) instead of parked and reloaded from its saved context per command (default on swtpm).
  const cached = await Tpm.open({ tcti: swtpm.tcti, cacheSrk: true });
  try {
    const times: number[] = [];
    for (let i = 0; i < N + 5; i++) {
      const t = performance.now();
      await cached.sign(ecc, digest);
      if (i >= 5) times.push(performance.now() - t);
    }
    report('sign.ecc.cacheSrk.total.p50', pct(times, 0.5), 'ms');
  } finally {
    await cached.close();
  }

  const key: TpmKey = ecc;
  const tl = performance.now();
  for (let i = 0; i < 50; i++) await tpm.loadKey(key.blob as Uint8Array);
  report('loadKey.mean', (performance.now() - tl) / 50, 'ms');
} finally {
  await tpm.close();
  await swtpm.stop();
}

const json = arg('--json');
if (json) writeFileSync(json, `${JSON.stringify(results, null, 2)}\n`);
