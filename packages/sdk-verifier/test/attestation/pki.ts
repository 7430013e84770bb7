/**
 * Test PKI made with the openssl CLI: an EK CA and EK certificates for arbitrary public keys
 * (`-force_pubkey`), the way a TPM vendor CA issues certificates for keys it never holds.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCa {
  dir: string;
  certPem: string;
  keyPath: string;
  certPath: string;
  /** Issues an EK certificate (DER) for a SPKI PEM public key. */
  issue(publicKeyPem: string, days?: number): Uint8Array;
  cleanup(): void;
}

export function makeTestCa(name = 'Test EK CA'): TestCa {
  const dir = mkdtempSync(join(tmpdir(), 'ekca-'));
  const keyPath = join(dir, 'ca.key');
  const certPath = join(dir, 'ca.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      keyPath,
      '-out',
      certPath,
      '-subj',
      `/CN=${name}`,
      '-days',
      '3650',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign',
    ],
    { stdio: 'pipe' },
  );
  let n = 0;
  return {
    dir,
    keyPath,
    certPath,
    certPem: readFileSync(certPath, 'utf8'),
    issue(publicKeyPem: string, days = 365) {
      n++;
      const pub = join(dir, `ek${n}.pub.pem`);
      const out = join(dir, `ek${n}.der`);
      writeFileSync(pub, publicKeyPem);
      execFileSync(
        'openssl',
        [
          'x509',
          '-new',
          '-force_pubkey',
          pub,
          '-subj',
          '/CN=EK',
          '-CA',
          certPath,
          '-CAkey',
          keyPath,
          '-days',
          String(days),
          '-outform',
          'DER',
          '-out',
          out,
        ],
        { stdio: 'pipe' },
      );
      return new Uint8Array(readFileSync(out));
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
