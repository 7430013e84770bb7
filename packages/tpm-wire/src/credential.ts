import { constants, createCipheriv, createECDH, createHmac, publicEncrypt, randomBytes } from 'node:crypto';
import { decodeObjectAttributes } from './attributes.js';
import { concat, Writer } from './buffer.js';
import { type HashAlg, hashAlgId, hashSize, MAX_DIGEST } from './constants.js';
import { TpmWireError } from './errors.js';
import { kdfa, kdfe } from './kdf.js';
import { curveSize, publicToKeyObject, withKey } from './keys.js';
import { asPublic, type SymDefObject, type TpmPublic } from './public.js';

/**
 * Output of {@link makeCredential}: both values are complete TPM2B structures WITH their 2-byte size prefix,
 * ready for Tss2_MU_TPM2B_ID_OBJECT_Unmarshal / Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal and
 * TPM2_ActivateCredential.
 * @public
 */
export interface MadeCredential {
  /** Marshalled TPM2B_ID_OBJECT: size ‖ TPM2B_DIGEST(integrityHMAC) ‖ encIdentity. */
  credentialBlob: Uint8Array;
  /** Marshalled TPM2B_ENCRYPTED_SECRET: size ‖ (RSA-OAEP ciphertext | TPMS_ECC_POINT of the ephemeral key). */
  encryptedSecret: Uint8Array;
}

const NODE_CURVE: Record<string, string> = { p256: 'prime256v1', p384: 'secp384r1', p521: 'secp521r1' };

/** The EK must be a restricted decryption (storage) key with an AES-CFB inner symmetric algorithm. */
function checkEk(ek: TpmPublic): SymDefObject {
  const a = decodeObjectAttributes(ek.objectAttributes);
  if (!a.restricted || !a.decrypt || a.sign) {
    throw new TpmWireError(
      'invalid_ek',
      'EK must be a restricted decryption key (restricted, decrypt, not sign)',
    );
  }
  const sym = ek.type === 'rsa' ? ek.rsa?.symmetric : ek.ecc?.symmetric;
  if (!sym || sym.algorithm !== 'aes' || sym.mode !== 'cfb' || ![128, 192, 256].includes(sym.keyBits)) {
    throw new TpmWireError('invalid_ek', 'EK symmetric algorithm must be AES-128/192/256-CFB');
  }
  return sym;
}

function checkName(name: Uint8Array): void {
  if (name.length < 2) throw new TpmWireError('invalid_argument', 'objectName too short');
  const algId = ((name[0] as number) << 8) | (name[1] as number);
  const alg = (['sha1', 'sha256', 'sha384', 'sha512'] as HashAlg[]).find((h) => hashAlgId(h) === algId);
  if (!alg || name.length !== 2 + hashSize(alg)) {
    throw new TpmWireError('invalid_argument', 'objectName must be nameAlg (2 bytes) followed by its digest');
  }
}

/**
 * Creates the seed and its encryption to the EK (TPM 2.0 Part 1 §24.4 / Annex B.10 and C.6.4):
 * RSA: random seed, RSA-OAEP(nameAlg) with label "IDENTITY\0"; ECC: ephemeral ECDH on the EK's curve,
 * seed = KDFe(nameAlg, Z, "IDENTITY", ephemeral.x, EK.x), encrypted secret = the ephemeral point.
 */
function makeSeed(ek: TpmPublic): { seed: Uint8Array; encrypted: Uint8Array } {
  const digestBytes = hashSize(ek.nameAlg);
  if (ek.type === 'rsa' && ek.rsa) {
    const scheme = ek.rsa.scheme;
    if (scheme && scheme.scheme !== 'oaep') {
      throw new TpmWireError(
        'invalid_ek',
        `RSA EK scheme ${scheme.scheme} cannot protect a seed (need OAEP/NULL)`,
      );
    }
    const oaepHash = scheme?.hashAlg ?? ek.nameAlg;
    const seed = new Uint8Array(randomBytes(digestBytes));
    const key = publicToKeyObject(ek);
    const encrypted = withKey('makeCredential', () =>
      publicEncrypt(
        {
          key,
          padding: constants.RSA_PKCS1_OAEP_PADDING,
          oaepHash,
          oaepLabel: Buffer.from('IDENTITY\0', 'latin1'),
        },
        seed,
      ),
    );
    return { seed, encrypted: new Uint8Array(encrypted) };
  }
  if (ek.type === 'ecc' && ek.ecc) {
    const { curve, x, y, scheme } = ek.ecc;
    if (scheme && scheme.scheme !== 'ecdh') {
      throw new TpmWireError(
        'invalid_ek',
        `ECC EK scheme ${scheme.scheme} cannot protect a seed (need ECDH/NULL)`,
      );
    }
    const nodeCurve = NODE_CURVE[curve];
    if (!nodeCurve) throw new TpmWireError('unsupported_algorithm', `EK curve ${curve} not supported`);
    publicToKeyObject(ek); // validates the EK point is on the curve before we use it
    const size = curveSize(curve);
    const pad = (b: Uint8Array) => concat(new Uint8Array(size - b.length), b);
    const eph = createECDH(nodeCurve);
    eph.generateKeys();
    let z: Uint8Array;
    try {
      z = new Uint8Array(eph.computeSecret(Buffer.from(concat(Uint8Array.of(4), pad(x), pad(y)))));
    } catch (cause) {
      throw new TpmWireError('invalid_ek', 'EK point is not usable for ECDH', { cause });
    }
    const point = new Uint8Array(eph.getPublicKey()); // 04 ‖ X ‖ Y, each `size` bytes
    const ex = point.subarray(1, 1 + size);
    const ey = point.subarray(1 + size);
    const seed = kdfe(ek.nameAlg, z, 'IDENTITY', ex, x, digestBytes * 8);
    const encrypted = new Writer().tpm2b(ex, size, 'x').tpm2b(ey, size, 'y').finish();
    return { seed, encrypted };
  }
  throw new TpmWireError('invalid_ek', 'EK must be RSA or ECC');
}

/**
 * TPM2_MakeCredential in software (TPM 2.0 Part 1 §24, Part 3 §12.6): protects `secret` so that only the TPM
 * holding `ekPublic`'s private key can recover it, and only for a loaded object with Name `objectName`
 * (TPM2_ActivateCredential).
 *
 * @remarks
 * symKey = KDFa(nameAlg, seed, "STORAGE", objectName, ∅, EK symmetric keyBits);
 * encIdentity = AES-CFB(symKey, IV = 0, TPM2B_DIGEST(secret));
 * HMACkey = KDFa(nameAlg, seed, "INTEGRITY", ∅, ∅, digest bits);
 * integrityHMAC = HMAC(nameAlg, HMACkey, encIdentity ‖ objectName). nameAlg and the symmetric algorithm are
 * those of the EK.
 *
 * @param args - `ekPublic` (parsed or TPM2B_PUBLIC bytes; RSA or ECC P-256/P-384/P-521 restricted decryption
 * key with AES-CFB), `objectName` (the AK's Name), `secret` (1 ..= digest size of the EK's nameAlg bytes)
 * @returns the marshalled TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET
 * @throws {@link TpmWireError} `invalid_ek`, `invalid_argument`, `unsupported_algorithm`
 * @public
 */
export function makeCredential(args: {
  ekPublic: TpmPublic | Uint8Array;
  objectName: Uint8Array;
  secret: Uint8Array;
}): MadeCredential {
  const ek = asPublic(args.ekPublic);
  const sym = checkEk(ek);
  checkName(args.objectName);
  const digestBytes = hashSize(ek.nameAlg);
  // Part 3 TPM2_MakeCredential: credential.size must not exceed the digest size of the EK's nameAlg.
  if (args.secret.length === 0 || args.secret.length > digestBytes || args.secret.length > MAX_DIGEST) {
    throw new TpmWireError('invalid_argument', `secret must be 1..${digestBytes} bytes`);
  }
  const { seed, encrypted } = makeSeed(ek);
  const symKey = kdfa(ek.nameAlg, seed, 'STORAGE', args.objectName, new Uint8Array(0), sym.keyBits);
  const cipher = createCipheriv(`aes-${sym.keyBits}-cfb`, symKey, Buffer.alloc(16));
  const plain = new Writer().tpm2b(args.secret, MAX_DIGEST, 'secret').finish();
  const encIdentity = new Uint8Array(Buffer.concat([cipher.update(plain), cipher.final()]));
  const hmacKey = kdfa(ek.nameAlg, seed, 'INTEGRITY', new Uint8Array(0), new Uint8Array(0), digestBytes * 8);
  const integrity = createHmac(ek.nameAlg, hmacKey).update(encIdentity).update(args.objectName).digest();
  const idObject = new Writer()
    .tpm2b(new Uint8Array(integrity), MAX_DIGEST, 'integrityHMAC')
    .bytes(encIdentity);
  return {
    credentialBlob: new Writer().tpm2b(idObject.finish(), 0xffff, 'TPM2B_ID_OBJECT').finish(),
    encryptedSecret: new Writer().tpm2b(encrypted, 0xffff, 'TPM2B_ENCRYPTED_SECRET').finish(),
  };
}
