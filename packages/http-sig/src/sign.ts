import { ALGORITHMS, isSignatureAlgorithm } from './algorithms.js';
import { encodeBase, signatureBaseString } from './base.js';
import { parseComponentList } from './components.js';
import { verifyContentDigest } from './digest.js';
import { HttpSigError } from './errors.js';
import { getFieldLines, type StructuredFieldType } from './fields.js';
import { assertLabel, assertSfString, toUnixSeconds } from './params.js';
import { type SfBareItem, type SfItem, serializeSfInnerList } from './sf.js';
import type { HttpMessage, Signer } from './types.js';

/**
 * Options of {@link signRequest}.
 *
 * @public
 */
export interface SignRequestOptions {
  /** Produces the signature (software key via {@link createSigner}, or a TPM). */
  signer: Signer;
  /** Covered components, in order: `@method`, `content-digest`, `@query-param;name="x"`, `"dict";key="a"`, … */
  components: readonly string[];
  /** Signature label (dictionary key in `Signature`/`Signature-Input`). Default `sig`. */
  label?: string;
  /** `created`: Date or Unix seconds. Default: now. `null` omits the parameter. */
  created?: number | Date | null;
  /** `expires`: Date or Unix seconds. Omitted by default. */
  expires?: number | Date;
  /** `nonce` parameter. */
  nonce?: string;
  /** `tag` parameter (application profile, e.g. `geofence/v1`). */
  tag?: string;
  /** Write the `alg` parameter. Default `true`; `false` only to reproduce messages that omit it. */
  includeAlg?: boolean;
  /** Structured types of fields covered with `sf` that are not in {@link KNOWN_STRUCTURED_FIELDS}. */
  fieldTypes?: Readonly<Record<string, StructuredFieldType>>;
}

/**
 * The two header values produced by {@link signRequest}; each holds one dictionary member (`label=…`).
 *
 * @public
 */
export interface SignatureHeaders {
  /** Value for the `Signature-Input` header. */
  'signature-input': string;
  /** Value for the `Signature` header. */
  signature: string;
}

/**
 * Builds the serialised `@signature-params` value and the parameter map for a new signature.
 */
function signatureParams(options: SignRequestOptions, items: SfItem[]): string {
  const params = new Map<string, SfBareItem>();
  const { created, expires, nonce, tag, signer } = options;
  let createdSeconds: number | undefined;
  if (created !== null) {
    createdSeconds = toUnixSeconds('created', created ?? new Date());
    params.set('created', createdSeconds);
  }
  if (expires !== undefined) {
    const expiresSeconds = toUnixSeconds('expires', expires);
    if (createdSeconds !== undefined && expiresSeconds < createdSeconds) {
      throw new HttpSigError('malformed', 'expires is before created');
    }
    params.set('expires', expiresSeconds);
  }
  assertSfString('keyid', signer.keyid);
  params.set('keyid', signer.keyid);
  if (options.includeAlg !== false) params.set('alg', signer.alg);
  if (nonce !== undefined) {
    assertSfString('nonce', nonce);
    params.set('nonce', nonce);
  }
  if (tag !== undefined) {
    assertSfString('tag', tag);
    params.set('tag', tag);
  }
  return serializeSfInnerList([items, params]);
}

/**
 * Signs an HTTP request (or response, when `message.status` is set) per RFC 9421 and returns the
 * `Signature-Input` and `Signature` header values. The caller sets them on the message (appending to existing
 * signatures with `, ` if there are any).
 *
 * If `content-digest` is covered and `message.body` is given, the digest is checked against the body first, so
 * a stale digest is never signed.
 *
 * Throws {@link HttpSigError}: `malformed`, `unsupported`, `missing_component`, `digest_mismatch`, `alg_mismatch`.
 *
 * @example
 * ```ts
 * const headers = await signRequest(
 *   { method: 'POST', url: 'https://api.example/metrics', headers: { 'content-digest': digest } },
 *   { signer, components: ['@method', '@path', 'content-digest'], label: 'geo', tag: 'geofence/v1' },
 * );
 * ```
 *
 * @public
 */
export async function signRequest(
  message: HttpMessage,
  options: SignRequestOptions,
): Promise<SignatureHeaders> {
  const { signer } = options;
  if (!isSignatureAlgorithm(signer.alg)) {
    throw new HttpSigError('unsupported', `algorithm ${String(signer.alg)} is not supported`);
  }
  const label = options.label ?? 'sig';
  assertLabel(label);
  const components = parseComponentList(options.components);
  const sigParams = signatureParams(
    options,
    components.map((c): SfItem => [c.name, c.params as Map<string, SfBareItem>]),
  );
  const base = signatureBaseString(message, components, sigParams, options.fieldTypes);
  if (message.body !== undefined && components.some((c) => c.name === 'content-digest')) {
    const digest = getFieldLines(message.headers, 'content-digest');
    verifyContentDigest(Array.isArray(digest) ? digest.join(', ') : (digest ?? ''), message.body);
  }
  const signature = await signer.sign(encodeBase(base));
  const expected = ALGORITHMS[signer.alg].signatureLength;
  if (!(signature instanceof Uint8Array) || (expected !== null && signature.length !== expected)) {
    // Typical cause: a signer returning DER-encoded ECDSA instead of raw r‖s.
    throw new HttpSigError(
      'malformed',
      `signer returned a signature that is not ${expected ?? 'a byte array'} bytes`,
    );
  }
  return {
    'signature-input': `${label}=${sigParams}`,
    signature: `${label}=:${Buffer.from(signature.buffer, signature.byteOffset, signature.byteLength).toString('base64')}:`,
  };
}
