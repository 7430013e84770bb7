/**
 * The wire contract of Proof-of-Geofencing credentials (SPEC §17): how a workload presents the
 * attestation result the collector issued, and how it proves possession of the key the credential
 * binds, to any resource server (`requireGeofence` in the verifier, `agent.fetch` in the agent).
 */

/**
 * Request header carrying the credential as a compact JWS (the attestation-result JWT, `typ`
 * `geofence-ar+jwt`). Covered by the request's signature, so it cannot be swapped.
 * @public
 */
export const CREDENTIAL_HEADER = 'geofence-credential';

/**
 * Request header carrying the credential as an X.509 certificate instead: the DER bytes as an RFC 8941
 * byte sequence (`:base64:`). A request carries exactly one of {@link CREDENTIAL_HEADER} and this.
 * @public
 */
export const CREDENTIAL_CERTIFICATE_HEADER = 'geofence-certificate';

/**
 * Label of the RFC 9421 signature a credential holder puts on each request (`Signature-Input: pog=(...)`).
 * @public
 */
export const CREDENTIAL_SIGNATURE_LABEL = 'pog';

/**
 * `tag` parameter of that signature, so it cannot be confused with the metrics signature (`geofence/v1`).
 * @public
 */
export const CREDENTIAL_SIGNATURE_TAG = 'geofence-pog/v1';

/**
 * Components the credential-holder signature covers, in order, for a request without a body. A
 * request with a body also covers `content-digest` (RFC 9530), appended last; the credential header is
 * the one the request carries ({@link CREDENTIAL_HEADER} or {@link CREDENTIAL_CERTIFICATE_HEADER}).
 * Required parameters: `created`, `keyid` (the `cnf.jkt` of the credential: RFC 7638 thumbprint of the
 * bound key), `alg`, `tag` and a single-use `nonce` chosen by the client (at least 128 random bits,
 * base64url); `expires` is optional.
 * @public
 */
export const CREDENTIAL_SIGNATURE_COMPONENTS = Object.freeze(['@method', '@target-uri'] as const);

/**
 * Default lifetime of a credential in seconds (10 minutes).
 * @public
 */
export const DEFAULT_CREDENTIAL_LIFETIME_SECONDS = 600;

/**
 * OID of the critical X.509 extension that carries the attestation-result claims in a PoG
 * certificate (draft-lkspa-rats-verifiable-geo-fence-03 §5.4). Critical, so that a relying party that
 * does not understand it refuses the certificate (fails closed).
 * @public
 */
export const CREDENTIAL_X509_EXTENSION_OID = '1.3.6.1.4.1.65284.1.1';

/**
 * Credential encodings a workload may ask for in the `credential_format` member of the
 * `POST /attest/location` body: `jwt` (default: only the attestation-result JWT) or `x509` (the JWT
 * and, in the response's {@link CREDENTIAL_CERTIFICATE_RESPONSE_MEMBER}, an X.509 certificate of the AppSK).
 * @public
 */
export const CREDENTIAL_FORMATS = Object.freeze(['jwt', 'x509'] as const);

/**
 * A credential encoding (see {@link CREDENTIAL_FORMATS}).
 * @public
 */
export type CredentialFormat = (typeof CREDENTIAL_FORMATS)[number];

/**
 * Name of the `POST /attest/location` request member that selects the credential encoding.
 * @public
 */
export const CREDENTIAL_FORMAT_REQUEST_MEMBER = 'credential_format';

/**
 * Name of the `POST /attest/location` response member carrying the PoG certificate (base64url of
 * its DER bytes) when `credential_format` was `x509`.
 * @public
 */
export const CREDENTIAL_CERTIFICATE_RESPONSE_MEMBER = 'certificate';

/**
 * Path at which a collector publishes its attestation CA certificate (PEM), the trust anchor of PoG
 * certificates. The JWKS of the result-signing key stays at `/.well-known/jwks.json`.
 * @public
 */
export const ATTESTATION_CA_PATH = '/.well-known/geofence-ca.pem';
