import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Directory of the committed swtpm/tpm2-tools fixtures. */
export const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));

/** Reads a fixture file as bytes. */
export function fixture(name: string): Uint8Array {
  return new Uint8Array(readFileSync(`${FIXTURES}${name}`));
}

/** Reads a fixture file as text. */
export function fixtureText(name: string): string {
  return readFileSync(`${FIXTURES}${name}`, 'utf8');
}

/** DER SPKI of a PEM public key, converted by the openssl CLI (an independent implementation). */
export function opensslSpkiDer(pemFile: string): Uint8Array {
  return new Uint8Array(
    execFileSync('openssl', ['pkey', '-pubin', '-in', `${FIXTURES}${pemFile}`, '-outform', 'DER']),
  );
}

/** Names as printed by tpm2-tools while generating the fixtures. */
export function toolNames(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of fixtureText('names.txt').trim().split('\n')) {
    const [k, v] = line.split(': ');
    if (k && v) out[k] = v;
  }
  return out;
}

export const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
