import {
  constants,
  createDecipheriv,
  createECDH,
  createHmac,
  type KeyObject,
  privateDecrypt,
  timingSafeEqual,
} from 'node:crypto';
import { hashSize, kdfa, kdfe, type TpmPublic } from '../src/index.js';

const u16 = (b: Uint8Array, o: number) => ((b[o] as number) << 8) | (b[o + 1] as number);

/**
 * Test-only software TPM2_ActivateCredential with the EK's private key: an independent reading of
 * Part 1 §24 used to check both our makeCredential and tpm2_makecredential's output.
 */
export function softwareActivate(
  ek: TpmPublic,
  ekPrivate: KeyObject,
  name: Uint8Array,
  credentialBlob: Uint8Array,
  encryptedSecret: Uint8Array,
): Uint8Array {
  const idSize = u16(credentialBlob, 0);
  if (idSize !== credentialBlob.length - 2) throw new Error('TPM2B_ID_OBJECT size');
  const id = credentialBlob.subarray(2);
  const hmacSize = u16(id, 0);
  const hmac = id.subarray(2, 2 + hmacSize);
  const encIdentity = id.subarray(2 + hmacSize);
  if (u16(encryptedSecret, 0) !== encryptedSecret.length - 2) throw new Error('TPM2B_ENCRYPTED_SECRET size');
  const secretBody = encryptedSecret.subarray(2);
  let seed: Uint8Array;
  if (ek.type === 'rsa') {
    seed = privateDecrypt(
      {
        key: ekPrivate,
        padding: constants.RSA_PKCS1_OAEP_PADDING,
        oaepHash: ek.nameAlg,
        oaepLabel: Buffer.from('IDENTITY\0', 'latin1'),
      },
      secretBody,
    );
  } else {
    const xl = u16(secretBody, 0);
    const x = secretBody.subarray(2, 2 + xl);
    const yl = u16(secretBody, 2 + xl);
    const y = secretBody.subarray(4 + xl, 4 + xl + yl);
    const ecdh = createECDH('prime256v1');
    const d = ekPrivate.export({ format: 'jwk' }).d!;
    ecdh.setPrivateKey(Buffer.from(d, 'base64url'));
    // TPM2B coordinates may come without leading zero bytes (tpm2-tools writes them that way about
    // once in 128 points); the SEC1 point needs both at the full 32 bytes.
    const pad = (c: Uint8Array) => Buffer.concat([Buffer.alloc(32 - c.length), c]);
    const z = ecdh.computeSecret(Buffer.concat([Buffer.from([4]), pad(x), pad(y)]));
    seed = kdfe(ek.nameAlg, z, 'IDENTITY', x, ek.ecc!.x, hashSize(ek.nameAlg) * 8);
  }
  const hmacKey = kdfa(
    ek.nameAlg,
    seed,
    'INTEGRITY',
    new Uint8Array(0),
    new Uint8Array(0),
    hashSize(ek.nameAlg) * 8,
  );
  const expect = createHmac(ek.nameAlg, hmacKey).update(encIdentity).update(name).digest();
  if (expect.length !== hmac.length || !timingSafeEqual(expect, hmac))
    throw new Error('integrity check failed');
  const keyBits = (ek.type === 'rsa' ? ek.rsa!.symmetric : ek.ecc!.symmetric)!.keyBits;
  const symKey = kdfa(ek.nameAlg, seed, 'STORAGE', name, new Uint8Array(0), keyBits);
  const d = createDecipheriv(`aes-${keyBits}-cfb`, symKey, Buffer.alloc(16));
  const plain = Buffer.concat([d.update(encIdentity), d.final()]);
  const n = u16(plain, 0);
  if (n !== plain.length - 2) throw new Error('TPM2B_DIGEST size');
  return new Uint8Array(plain.subarray(2));
}
