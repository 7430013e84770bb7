import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A throw-away test CA and a server certificate for 127.0.0.1 / localhost, made with openssl. */
export interface TestPki {
  caPem: string;
  certPem: string;
  keyPem: string;
  /** A second, unrelated CA (for "wrong CA" tests). */
  otherCaPem: string;
}

function ossl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' });
}

export function makePki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'agent-pki-'));
  for (const ca of ['ca', 'other']) {
    ossl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${ca}.key`], dir);
    ossl(
      [
        'req',
        '-x509',
        '-new',
        '-key',
        `${ca}.key`,
        '-sha256',
        '-days',
        '2',
        '-subj',
        `/CN=geofence test ${ca} CA`,
        '-out',
        `${ca}.pem`,
      ],
      dir,
    );
  }
  ossl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'server.key'], dir);
  ossl(['req', '-new', '-key', 'server.key', '-subj', '/CN=127.0.0.1', '-out', 'server.csr'], dir);
  writeFileSync(
    join(dir, 'ext.cnf'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n',
  );
  ossl(
    [
      'x509',
      '-req',
      '-in',
      'server.csr',
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '2',
      '-sha256',
      '-extfile',
      'ext.cnf',
      '-out',
      'server.pem',
    ],
    dir,
  );
  const read = (f: string) => readFileSync(join(dir, f), 'utf8');
  return {
    caPem: read('ca.pem'),
    certPem: read('server.pem'),
    keyPem: read('server.key'),
    otherCaPem: read('other.pem'),
  };
}
