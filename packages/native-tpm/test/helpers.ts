import { execFileSync } from 'node:child_process';
import { type KeyObject, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A scratch directory for files handed to openssl / tpm2-tools. */
export function scratchDir(): {
  dir: string;
  file(name: string, data: Uint8Array | string): string;
  rm(): void;
} {
  const dir = mkdtempSync(join(tmpdir(), 'native-tpm-test-'));
  return {
    dir,
    file(name, data) {
      const p = join(dir, name);
      writeFileSync(p, data);
      return p;
    },
    rm() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs a command and returns { ok, out } instead of throwing, so tests can assert on failures. */
export function tool(cmd: string, args: string[]): { ok: boolean; out: string } {
  try {
    const out = execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return { ok: true, out };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    return { ok: false, out: `${e.stdout ?? ''}${e.stderr ?? ''}${e.message}` };
  }
}

/** DER encoding of an ECDSA signature from raw r‖s (what `openssl dgst -verify` expects). */
export function rawEcdsaToDer(rs: Uint8Array): Uint8Array {
  const int = (b: Uint8Array) => {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    let v = b.subarray(i);
    if ((v[0] as number) & 0x80) v = Uint8Array.from([0, ...v]);
    return Uint8Array.from([0x02, v.length, ...v]);
  };
  const half = rs.length / 2;
  const body = Uint8Array.from([...int(rs.subarray(0, half)), ...int(rs.subarray(half))]);
  return Uint8Array.from([0x30, body.length, ...body]);
}

/** SPKI PEM of a key object. */
export function spkiPem(key: KeyObject): string {
  return key.export({ type: 'spki', format: 'pem' }) as string;
}

/** PEM of a DER certificate. */
export function certPem(der: Uint8Array): string {
  return new X509Certificate(der).toString();
}

/** Timer drift sampler: how late a 5 ms interval fires while something runs. */
export function driftSampler(intervalMs = 5): { stop(): { maxMs: number; p99Ms: number; samples: number } } {
  const lateness: number[] = [];
  let expected = performance.now() + intervalMs;
  const t = setInterval(() => {
    const now = performance.now();
    lateness.push(Math.max(0, now - expected));
    expected = now + intervalMs;
  }, intervalMs);
  return {
    stop() {
      clearInterval(t);
      const sorted = [...lateness].sort((a, b) => a - b);
      const p99 = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))] ?? 0;
      return { maxMs: sorted.at(-1) ?? 0, p99Ms: p99, samples: sorted.length };
    },
  };
}

/**
 * What the TPM has loaded right now, asked independently of the addon (tpm2-tools over the same TCTI):
 * transient objects and loaded sessions. Empty lists mean every object and session was flushed.
 */
export function tpmLoaded(tcti: string): { transient: string[]; sessions: string[] } {
  const list = (cap: string) => {
    const r = tool('tpm2_getcap', ['-T', tcti, cap]);
    if (!r.ok) throw new Error(`tpm2_getcap ${cap} failed: ${r.out}`);
    return r.out
      .split('\n')
      .map((l) => l.replace(/^-\s*/, '').trim())
      .filter((l) => l.length > 0);
  };
  return { transient: list('handles-transient'), sessions: list('handles-loaded-session') };
}
