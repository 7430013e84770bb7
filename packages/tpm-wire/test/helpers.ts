import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  encodeObjectAttributes,
  marshalSignature,
  marshalTpmtPublic,
  type ObjectAttributes,
  parseTpmtPublic,
  type TpmPublic,
  TpmWireError,
} from '../src/index.js';

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

/** Lowercase hex of bytes. */
export const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** A software P-256 key described as a TPM public area, for tests where the TPM is not the subject. */
export function softwareEccKey(attrs: Partial<ObjectAttributes>): { pub: TpmPublic; privateKey: KeyObject } {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' });
  const objectAttributes = encodeObjectAttributes(attrs);
  const tpmt = marshalTpmtPublic({
    type: 'ecc',
    nameAlg: 'sha256',
    objectAttributes,
    attributes: {} as ObjectAttributes,
    authPolicy: new Uint8Array(0),
    ecc: {
      symmetric: null,
      scheme: attrs.sign ? { scheme: 'ecdsa', hashAlg: 'sha256' } : null,
      curve: 'p256',
      kdf: null,
      x: new Uint8Array(Buffer.from(jwk.x!, 'base64url')),
      y: new Uint8Array(Buffer.from(jwk.y!, 'base64url')),
    },
    tpmt: new Uint8Array(0),
  });
  return { pub: parseTpmtPublic(tpmt), privateKey };
}

/** Signs `message` like a TPM ECDSA-SHA256 key and returns TPMT_SIGNATURE bytes. */
export function softwareTpmSign(privateKey: KeyObject, message: Uint8Array): Uint8Array {
  const raw = new Uint8Array(sign('sha256', message, { key: privateKey, dsaEncoding: 'ieee-p1363' }));
  return marshalSignature({ alg: 'ecdsa', hashAlg: 'sha256', signature: raw });
}

/** Runs `fn` and returns the TpmWireError code it throws (or a marker string for anything else). */
export function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof TpmWireError ? e.code : `not a TpmWireError: ${String(e)}`;
  }
  return undefined;
}
