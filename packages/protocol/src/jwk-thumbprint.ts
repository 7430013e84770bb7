/**
 * RFC 7638 JWK thumbprints: the `cnf.jkt` of a Proof-of-Geofencing credential and the `keyid` of
 * the signature its holder puts on each request.
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';

/**
 * RFC 7638 SHA-256 thumbprint (base64url) of a public key: the SHA-256 of the JSON object of the
 * key's required JWK members in lexicographic order without whitespace (`crv`, `kty`, `x`, `y` for
 * EC; `e`, `kty`, `n` for RSA; `crv`, `kty`, `x` for OKP). Accepts a `KeyObject` or an SPKI PEM.
 * @public
 */
export function jwkThumbprint(publicKey: KeyObject | string): string {
  const key = typeof publicKey === 'string' ? createPublicKey(publicKey) : publicKey;
  const jwk = key.export({ format: 'jwk' });
  let members: Record<string, string | undefined>;
  if (jwk.kty === 'EC') members = { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y };
  else if (jwk.kty === 'RSA') members = { e: jwk.e, kty: jwk.kty, n: jwk.n };
  else if (jwk.kty === 'OKP') members = { crv: jwk.crv, kty: jwk.kty, x: jwk.x };
  else throw new TypeError(`no RFC 7638 thumbprint for key type ${String(jwk.kty)}`);
  // The members are listed in lexicographic order above; JSON.stringify keeps insertion order.
  return createHash('sha256').update(JSON.stringify(members), 'utf8').digest('base64url');
}
