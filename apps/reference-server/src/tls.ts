/**
 * Local demo PKI: a CA, a server certificate (localhost, 127.0.0.1, ::1) and a client certificate,
 * generated once with `@peculiar/x509` + Node's WebCrypto and reused across runs from `<dataDir>/tls/`.
 * Private keys are written with mode 0600 inside a 0700 directory. Certificates are re-issued when they
 * are missing, expire within 7 days, or were not signed by the stored CA.
 */
import { X509Certificate as NodeX509, webcrypto } from 'node:crypto';

type CryptoKey = webcrypto.CryptoKey;

import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmdirSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';

/** PEM material for the TLS listeners and clients. */
export interface TlsMaterial {
  /** Trust anchor (PEM) the clients verify the server certificate against. */
  ca: string;
  /** Server certificate chain (PEM). */
  cert: string;
  /** Server private key (PEM, PKCS#8). */
  key: string;
  /** Client certificate (PEM), for mutual TLS between gateway and collector when enabled. */
  clientCert: string;
  /** Client private key (PEM). */
  clientKey: string;
  /** Paths on disk, for other processes (`SSL_CA_PATH` etc.). */
  paths: { ca: string; cert: string; key: string; clientCert: string; clientKey: string };
}

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY = 86_400_000;

function pemKey(der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64');
  return `-----BEGIN PRIVATE KEY-----\n${b64.match(/.{1,64}/g)?.join('\n')}\n-----END PRIVATE KEY-----\n`;
}

async function importKey(pem: string): Promise<CryptoKey> {
  const b64 = pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  return webcrypto.subtle.importKey('pkcs8', Buffer.from(b64, 'base64'), EC, true, ['sign']);
}

function serial(): string {
  // Positive 16-byte serial (RFC 5280 §4.1.2.2: ≤ 20 octets, positive).
  const b = webcrypto.getRandomValues(new Uint8Array(16));
  b[0] = (b[0] as number) & 0x7f;
  return Buffer.from(b).toString('hex');
}

/** Atomic write (temp file + rename): a concurrent reader sees the old or the new file, never half. */
function writeAtomic(path: string, data: string, mode: number): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, data, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

function writeSecret(path: string, data: string): void {
  writeAtomic(path, data, 0o600);
}

/**
 * Cross-process lock (a directory: mkdir is atomic) so services started at the same moment on one
 * data directory do not each generate a different CA. A lock older than 30 s is considered stale.
 */
async function withLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const lock = join(dir, '.lock');
  for (let i = 0; ; i++) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      try {
        if (Date.now() - statSync(lock).mtimeMs > 30_000) rmdirSync(lock);
      } catch {
        // released meanwhile
      }
      if (i > 400) throw new Error(`timed out waiting for ${lock}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  try {
    return await fn();
  } finally {
    rmdirSync(lock);
  }
}

function stillGood(certPem: string, caPem: string): boolean {
  try {
    const cert = new NodeX509(certPem);
    const ca = new NodeX509(caPem);
    return (
      cert.checkIssued(ca) && cert.verify(ca.publicKey) && Date.parse(cert.validTo) - Date.now() > 7 * DAY
    );
  } catch {
    return false;
  }
}

async function issueLeaf(
  caCert: x509.X509Certificate,
  caKey: CryptoKey,
  cn: string,
  usage: 'server' | 'client',
): Promise<{ cert: string; key: string }> {
  const keys = await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify']);
  const now = Date.now();
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension(
      [usage === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth],
      false,
    ),
    await x509.AuthorityKeyIdentifierExtension.create(caCert, false, webcrypto),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, webcrypto),
  ];
  if (usage === 'server') {
    extensions.push(
      new x509.SubjectAlternativeNameExtension([
        { type: 'dns', value: 'localhost' },
        { type: 'ip', value: '127.0.0.1' },
        { type: 'ip', value: '::1' },
      ]),
    );
  }
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: serial(),
      subject: `CN=${cn}`,
      issuer: caCert.subject,
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + 397 * DAY),
      signingAlgorithm: SIGN,
      publicKey: keys.publicKey,
      signingKey: caKey,
      extensions,
    },
    webcrypto,
  );
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { cert: cert.toString('pem'), key: pemKey(pkcs8) };
}

/** Where the demo CA certificate of a data directory is (created by {@link ensureDemoPki}). */
export function demoCaPath(dataDir: string): string {
  return join(dataDir, 'tls', 'ca.pem');
}

/**
 * Returns the demo PKI under `<dataDir>/tls`, creating or renewing what is missing.
 * Idempotent and cheap on reuse (reads five files).
 */
export async function ensureDemoPki(dataDir: string): Promise<TlsMaterial> {
  const dir = join(dataDir, 'tls');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  return withLock(dir, () => ensureLocked(dir));
}

async function ensureLocked(dir: string): Promise<TlsMaterial> {
  const paths = {
    ca: join(dir, 'ca.pem'), // demoCaPath
    caKey: join(dir, 'ca-key.pem'),
    cert: join(dir, 'server.pem'),
    key: join(dir, 'server-key.pem'),
    clientCert: join(dir, 'client.pem'),
    clientKey: join(dir, 'client-key.pem'),
  };

  let caPem: string | undefined;
  let caKeyPem: string | undefined;
  if (existsSync(paths.ca) && existsSync(paths.caKey)) {
    caPem = readFileSync(paths.ca, 'utf8');
    caKeyPem = readFileSync(paths.caKey, 'utf8');
    try {
      if (Date.parse(new NodeX509(caPem).validTo) - Date.now() < 30 * DAY) caPem = undefined;
    } catch {
      caPem = undefined;
    }
  }
  let caCert: x509.X509Certificate;
  let caKey: CryptoKey;
  if (caPem && caKeyPem) {
    caCert = new x509.X509Certificate(caPem);
    caKey = await importKey(caKeyPem);
  } else {
    const keys = await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify']);
    const now = Date.now();
    caCert = await x509.X509CertificateGenerator.createSelfSigned(
      {
        serialNumber: serial(),
        name: 'CN=geofence demo CA',
        notBefore: new Date(now - 60_000),
        notAfter: new Date(now + 5 * 365 * DAY),
        signingAlgorithm: SIGN,
        keys,
        extensions: [
          new x509.BasicConstraintsExtension(true, 0, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
          await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, webcrypto),
        ],
      },
      webcrypto,
    );
    caKey = keys.privateKey;
    caPem = caCert.toString('pem');
    writeSecret(paths.caKey, pemKey(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)));
    writeAtomic(paths.ca, caPem, 0o644);
  }

  for (const [certPath, keyPath, cn, usage] of [
    [paths.cert, paths.key, 'localhost', 'server'],
    [paths.clientCert, paths.clientKey, 'geofence-gateway', 'client'],
  ] as const) {
    if (existsSync(certPath) && existsSync(keyPath) && stillGood(readFileSync(certPath, 'utf8'), caPem))
      continue;
    const leaf = await issueLeaf(caCert, caKey, cn, usage);
    writeSecret(keyPath, leaf.key);
    writeAtomic(certPath, leaf.cert, 0o644);
  }

  return {
    ca: caPem,
    cert: readFileSync(paths.cert, 'utf8'),
    key: readFileSync(paths.key, 'utf8'),
    clientCert: readFileSync(paths.clientCert, 'utf8'),
    clientKey: readFileSync(paths.clientKey, 'utf8'),
    paths: {
      ca: paths.ca,
      cert: paths.cert,
      key: paths.key,
      clientCert: paths.clientCert,
      clientKey: paths.clientKey,
    },
  };
}

/** TLS material actually used by a service: configured files when given, otherwise the demo PKI. */
export async function resolveTls(cfg: {
  dataDir: string;
  tls: { certPath?: string | undefined; keyPath?: string | undefined; caPath?: string | undefined };
}): Promise<{ ca: string; cert: string; key: string }> {
  if (cfg.tls.certPath && cfg.tls.keyPath) {
    const demo = cfg.tls.caPath ? undefined : await ensureDemoPki(cfg.dataDir);
    return {
      cert: readFileSync(cfg.tls.certPath, 'utf8'),
      key: readFileSync(cfg.tls.keyPath, 'utf8'),
      ca: cfg.tls.caPath ? readFileSync(cfg.tls.caPath, 'utf8') : (demo?.ca ?? ''),
    };
  }
  const demo = await ensureDemoPki(cfg.dataDir);
  return {
    cert: demo.cert,
    key: demo.key,
    ca: cfg.tls.caPath ? readFileSync(cfg.tls.caPath, 'utf8') : demo.ca,
  };
}
