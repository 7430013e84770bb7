/**
 * PoG certificates (SPEC §17, V-PEA §5.4 X.509 encoding): X.509 certificates of a workload's AppSK,
 * issued by the collector's attestation CA, carrying the attestation-result claims in the critical
 * extension `CREDENTIAL_X509_EXTENSION_OID` — and their verification by relying parties.
 *
 * The extension value is a DER UTF8String holding the JCS (RFC 8785) serialisation of the same
 * claims the JWT carries (`iss`, `sub`, `jti`, `iat`, `exp`, `cnf`, `geofence`): one claim model,
 * two encodings, and any tool that prints the extension shows readable JSON.
 */

import type { KeyObject } from 'node:crypto';
import {
  createPrivateKey,
  createPublicKey,
  X509Certificate as NodeX509Certificate,
  webcrypto,
} from 'node:crypto';
import { CREDENTIAL_X509_EXTENSION_OID, jcsBytes } from '@geofence/protocol';
import type * as X509 from '@peculiar/x509';
import type { AttestationResultPayload } from './result.js';

/**
 * `@peculiar/x509`, loaded on first use: importing it installs the `reflect-metadata` polyfill on
 * the global `Reflect`, a side effect no user of the package root should get without asking for X.509.
 */
let peculiar: Promise<typeof X509> | undefined;
function x509lib(): Promise<typeof X509> {
  peculiar ??= import('@peculiar/x509');
  return peculiar;
}

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;

/** Extensions a PoG certificate may mark critical; any other critical extension is refused (RFC 5280 §4.2). */
const UNDERSTOOD_CRITICAL = new Set([
  CREDENTIAL_X509_EXTENSION_OID,
  '2.5.29.19', // basicConstraints
  '2.5.29.15', // keyUsage
]);

/** DER length octets. */
function derLength(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n);
  const bytes: number[] = [];
  for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff);
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}

/**
 * The DER value of the claims extension: a UTF8String of the JCS of `payload`.
 * @public
 */
export function encodeClaimsExtension(payload: AttestationResultPayload): Uint8Array {
  const text = jcsBytes(payload);
  return Uint8Array.from([0x0c, ...derLength(text.length), ...text]);
}

/**
 * Decodes the claims extension value (a DER UTF8String of JSON); undefined when it is not one.
 * @public
 */
export function decodeClaimsExtension(value: Uint8Array): unknown {
  if (value.length < 2 || value[0] !== 0x0c) return undefined;
  let len = value[1] as number;
  let offset = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || value.length < 2 + n) return undefined;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (value[2 + i] as number);
    offset = 2 + n;
  }
  if (offset + len !== value.length) return undefined;
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(value.subarray(offset)));
  } catch {
    return undefined;
  }
}

function serialNumber(): string {
  // Positive 16-byte serial (RFC 5280 §4.1.2.2: at most 20 octets, positive).
  const b = webcrypto.getRandomValues(new Uint8Array(16));
  b[0] = (b[0] as number) & 0x7f;
  return Buffer.from(b).toString('hex');
}

/**
 * Options of {@link PogCertificateAuthority.create}.
 * @public
 */
export interface PogCertificateAuthorityOptions {
  /** The CA's EC P-256 private key (KeyObject or PKCS#8 PEM). */
  key: KeyObject | string;
  /**
   * The CA certificate (PEM) for that key. Default: a new self-signed one (persist it — see
   * {@link PogCertificateAuthority.certificatePem} — so relying parties can pin it).
   */
  certificate?: string;
  /** Subject of a generated CA certificate (default `CN=geofence attestation CA`). */
  subject?: string;
  /** Validity of a generated CA certificate in days (default 3650). */
  validityDays?: number;
}

/**
 * The collector's attestation CA: issues PoG certificates for AppSK public keys.
 *
 * @example
 * ```ts
 * const ca = await PogCertificateAuthority.create({ key: pem });
 * const der = await ca.issue(payload, appKeySpkiDer);
 * ```
 * @public
 */
export class PogCertificateAuthority {
  /** The CA certificate (PEM): the trust anchor relying parties configure. */
  readonly certificatePem: string;
  private readonly cert: X509.X509Certificate;
  private readonly signingKey: webcrypto.CryptoKey;

  private constructor(cert: X509.X509Certificate, signingKey: webcrypto.CryptoKey) {
    this.cert = cert;
    this.certificatePem = cert.toString('pem');
    this.signingKey = signingKey;
  }

  /** Imports the key (EC P-256 only) and loads or creates the CA certificate. */
  static async create(options: PogCertificateAuthorityOptions): Promise<PogCertificateAuthority> {
    const x509 = await x509lib();
    const keyObject = typeof options.key === 'string' ? createPrivateKey(options.key) : options.key;
    if (
      keyObject.type !== 'private' ||
      keyObject.asymmetricKeyType !== 'ec' ||
      keyObject.asymmetricKeyDetails?.namedCurve !== 'prime256v1'
    ) {
      throw new TypeError('attestation CA key must be an EC P-256 private key');
    }
    const pkcs8 = keyObject.export({ type: 'pkcs8', format: 'der' });
    const signingKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, EC, false, ['sign']);
    const spki = createPublicKey(keyObject).export({ type: 'spki', format: 'der' });
    const publicKey = await webcrypto.subtle.importKey('spki', spki, EC, true, ['verify']);
    let cert: X509.X509Certificate;
    if (options.certificate !== undefined) {
      cert = new x509.X509Certificate(options.certificate);
      const certSpki = Buffer.from(cert.publicKey.rawData);
      if (!certSpki.equals(spki)) throw new TypeError('attestation CA certificate is not for the CA key');
    } else {
      const now = Date.now();
      cert = await x509.X509CertificateGenerator.createSelfSigned(
        {
          serialNumber: serialNumber(),
          name: options.subject ?? 'CN=geofence attestation CA',
          notBefore: new Date(now - 60_000),
          notAfter: new Date(now + (options.validityDays ?? 3650) * DAY_MS),
          keys: { privateKey: signingKey, publicKey },
          signingAlgorithm: SIGN,
          extensions: [
            new x509.BasicConstraintsExtension(true, 0, true),
            new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
            await x509.SubjectKeyIdentifierExtension.create(publicKey, false, webcrypto),
          ],
        },
        webcrypto,
      );
    }
    return new PogCertificateAuthority(cert, signingKey);
  }

  /**
   * Issues the PoG certificate of `appKey` (the AppSK public key, the one `payload.cnf` names):
   * subject `CN=<sub>`, validity `iat`…`exp`, end entity for digital signatures, and the claims in
   * the critical extension. Returns the DER bytes.
   */
  async issue(payload: AttestationResultPayload, appKey: KeyObject | Uint8Array): Promise<Uint8Array> {
    const x509 = await x509lib();
    const spki =
      appKey instanceof Uint8Array
        ? appKey
        : new Uint8Array(appKey.export({ type: 'spki', format: 'der' }) as Buffer);
    const cert = await x509.X509CertificateGenerator.create(
      {
        serialNumber: serialNumber(),
        subject: [{ CN: [payload.sub] }],
        issuer: this.cert.subject,
        notBefore: new Date(payload.iat * 1000),
        notAfter: new Date(payload.exp * 1000),
        publicKey: spki,
        signingKey: this.signingKey,
        signingAlgorithm: SIGN,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          await x509.AuthorityKeyIdentifierExtension.create(this.cert, false, webcrypto),
          new x509.Extension(CREDENTIAL_X509_EXTENSION_OID, true, encodeClaimsExtension(payload)),
        ],
      },
      webcrypto,
    );
    return new Uint8Array(cert.rawData);
  }
}

/**
 * A PoG certificate that verified: its claims and the AppSK public key it certifies.
 * @public
 */
export interface VerifiedPogCertificate {
  /** The claims of the critical extension (the same shape as the JWT payload). */
  payload: AttestationResultPayload;
  /** The certified AppSK public key. */
  publicKey: KeyObject;
}

/**
 * Why a PoG certificate was refused: `certificate_malformed`, `certificate_untrusted` (no
 * configured CA signed it), `certificate_expired`, `certificate_extension` (claims extension
 * missing, not critical, or unreadable; or an unknown critical extension).
 * @public
 */
export class PogCertificateError extends Error {
  /** The failed check. */
  readonly check:
    | 'certificate_malformed'
    | 'certificate_untrusted'
    | 'certificate_expired'
    | 'certificate_extension';
  constructor(check: PogCertificateError['check'], message: string) {
    super(message);
    this.name = 'PogCertificateError';
    this.check = check;
  }
}

/**
 * Parses CA certificates (PEM, one or several concatenated blocks) into trust anchors for
 * {@link verifyPogCertificate}. Throws `TypeError` for a block that does not parse.
 * @public
 */
export function loadPogCaCertificates(pems: string | readonly string[]): NodeX509Certificate[] {
  const text = typeof pems === 'string' ? pems : pems.join('\n');
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new TypeError('no CA certificate given');
  return blocks.map((b, i) => {
    try {
      return new NodeX509Certificate(b);
    } catch (err) {
      throw new TypeError(`attestation CA certificate #${i + 1} does not parse`, { cause: err });
    }
  });
}

/**
 * Verifies a PoG certificate (DER) against trust anchors: issued and signed by one of `cas`, valid
 * at `now` (± `clockToleranceSeconds`), the claims extension present and critical, no other
 * critical extension this verifier does not understand. Throws {@link PogCertificateError}.
 * @public
 */
export async function verifyPogCertificate(
  der: Uint8Array,
  cas: readonly NodeX509Certificate[],
  options: { now?: Date; clockToleranceSeconds?: number } = {},
): Promise<VerifiedPogCertificate> {
  const x509 = await x509lib();
  let cert: X509.X509Certificate;
  let nodeCert: NodeX509Certificate;
  try {
    cert = new x509.X509Certificate(der);
    nodeCert = new NodeX509Certificate(der);
  } catch {
    throw new PogCertificateError('certificate_malformed', 'the certificate is not X.509 DER');
  }
  // Issuer name and signature by one of the anchors (node's checks: RFC 5280 name match, signature).
  const trusted = cas.some((ca) => {
    try {
      return nodeCert.checkIssued(ca) && nodeCert.verify(ca.publicKey);
    } catch {
      return false;
    }
  });
  if (!trusted) throw new PogCertificateError('certificate_untrusted', 'no trusted attestation CA issued it');
  const now = (options.now ?? new Date()).getTime();
  const tolerance = (options.clockToleranceSeconds ?? 30) * 1000;
  if (now + tolerance < cert.notBefore.getTime() || now - tolerance > cert.notAfter.getTime()) {
    throw new PogCertificateError('certificate_expired', 'the certificate is outside its validity period');
  }
  let claims: unknown;
  for (const ext of cert.extensions) {
    if (ext.type === CREDENTIAL_X509_EXTENSION_OID) {
      if (!ext.critical)
        throw new PogCertificateError('certificate_extension', 'the claims extension is not critical');
      claims = decodeClaimsExtension(new Uint8Array(ext.value));
    } else if (ext.critical && !UNDERSTOOD_CRITICAL.has(ext.type)) {
      throw new PogCertificateError('certificate_extension', `unknown critical extension ${ext.type}`);
    }
  }
  if (typeof claims !== 'object' || claims === null) {
    throw new PogCertificateError('certificate_extension', 'the claims extension is missing or unreadable');
  }
  const publicKey = createPublicKey({
    key: Buffer.from(cert.publicKey.rawData),
    format: 'der',
    type: 'spki',
  });
  return { payload: claims as AttestationResultPayload, publicKey };
}
