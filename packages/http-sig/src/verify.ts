import { KeyObject } from 'node:crypto';
import {
  algorithmForKey,
  assertKeyMatchesAlg,
  importVerificationKey,
  isSignatureAlgorithm,
  verifyBytes,
} from './algorithms.js';
import { encodeBase, signatureBaseString } from './base.js';
import { type ComponentId, componentFromItem, parseComponent } from './components.js';
import { verifyContentDigest } from './digest.js';
import { isLowS } from './ecdsa-low-s.js';
import { HttpSigError } from './errors.js';
import { getFieldLines, type StructuredFieldType } from './fields.js';
import { parseSfDictionary, type SfDictionary, type SfInnerList, serializeSfInnerList } from './sf.js';
import { readSignatureParams, type SignatureParams } from './signature-input.js';
import type {
  HttpMessage,
  PinnedVerificationKey,
  SignatureAlgorithm,
  VerificationKeyInput,
} from './types.js';

/**
 * Signature parameters defined by RFC 9421 §2.3.
 *
 * @public
 */
export type SignatureParamName = 'created' | 'expires' | 'keyid' | 'alg' | 'nonce' | 'tag';

/**
 * Options of {@link verifyRequest}.
 *
 * @public
 */
export interface VerifyRequestOptions {
  /**
   * Finds the key for `keyid`. `alg` is the signature's `alg` parameter when present. Return `undefined`/`null`
   * for an unknown key (→ `unknown_key`), or `{ key, alg }` to pin the algorithm. Errors it throws propagate.
   * Return the same KeyObject/JWK object for the same key: its import is cached per object.
   */
  keyLookup(
    keyid: string,
    alg: SignatureAlgorithm | undefined,
  ): Promise<VerificationKeyInput | PinnedVerificationKey | null | undefined>;
  /** Components that must be covered (same syntax as `signRequest` components). Else `missing_component`. */
  requiredComponents?: readonly string[];
  /** Signature parameters that must be present. Else `missing_param`. */
  requiredParams?: readonly SignatureParamName[];
  /** Verify the signature with this label only. Default: the first one (matching `tag`, if given). */
  label?: string;
  /** Only accept a signature with this `tag` (else `tag_mismatch`). */
  tag?: string;
  /** Algorithms accepted (else `alg_mismatch`). Default: all supported. */
  algorithms?: readonly SignatureAlgorithm[];
  /** Reject signatures whose `created` is older than this (requires `created`). */
  maxAgeSeconds?: number;
  /** Tolerance applied to `created`, `expires` and `maxAgeSeconds`. Default 60. */
  clockSkewSeconds?: number;
  /** Current time: a Date or Unix seconds. Default: the system clock. */
  now?: number | Date;
  /**
   * Called with the `nonce` parameter after the signature verified (so unauthenticated requests cannot burn
   * nonces); return `false` to reject (→ `nonce_rejected`). When set, a nonce is required (→ `missing_param`).
   */
  nonce?(value: string, signature: VerifiedSignature): boolean | Promise<boolean>;
  /**
   * When `message.body` is given and `content-digest` is covered, check the digest against the body too.
   * Default `true`.
   */
  checkContentDigest?: boolean;
  /** Structured types of fields covered with `sf` that are not in {@link KNOWN_STRUCTURED_FIELDS}. */
  fieldTypes?: Readonly<Record<string, StructuredFieldType>>;
  /**
   * Accept `ecdsa-p256-sha256` signatures only in low-s form (else `bad_signature`), so a message has
   * exactly one valid signature. Default `false`: RFC 9421 itself allows either form (its B.2.4 example is high-s).
   */
  requireLowS?: boolean;
}

/**
 * What a successful {@link verifyRequest} vouches for.
 *
 * @public
 */
export interface VerifiedSignature {
  /** Label of the verified signature. */
  label: string;
  /** `keyid` parameter. */
  keyid: string;
  /** Algorithm actually used. */
  alg: SignatureAlgorithm;
  /** `created` (Unix seconds), if present. */
  created: number | undefined;
  /** `expires` (Unix seconds), if present. */
  expires: number | undefined;
  /** `nonce`, if present. */
  nonce: string | undefined;
  /** `tag`, if present. */
  tag: string | undefined;
  /** Covered components in API form (`@method`, `@query-param;name="Pet"`, `content-digest`), in order. */
  components: string[];
  /**
   * The signature value that verified. With low-s ECDSA (`requireLowS`) or RSASSA-PKCS1-v1_5 a signed
   * message has exactly one valid value, so its digest identifies the request for single-use checks.
   */
  signature: Uint8Array;
}

const DEFAULT_SKEW = 60;
/** Positive key/alg checks, so a cached KeyObject is inspected once (its `asymmetricKeyDetails` allocates). */
const checkedKeys = new WeakMap<KeyObject, SignatureAlgorithm>();
/** Required-component lists are usually constants; canonicalise them once. */
const requiredCache = new WeakMap<readonly string[], string[]>();

function malformed(message: string, cause?: unknown): HttpSigError {
  return new HttpSigError('malformed', message, cause === undefined ? undefined : { cause });
}

function headerText(message: HttpMessage, name: string): string | undefined {
  const lines = getFieldLines(message.headers, name);
  if (lines === undefined) return undefined;
  return typeof lines === 'string' ? lines : lines.join(', ');
}

function parseDict(text: string, what: string, canonicalOut?: Map<string, string>): SfDictionary {
  try {
    return parseSfDictionary(text, canonicalOut);
  } catch (err) {
    throw malformed(`${what} is not a structured dictionary`, err);
  }
}

/** `label=:base64:` and nothing else: the usual Signature header, decoded without building a dictionary. */
const SINGLE_SIGNATURE = /^ *([a-z*][a-z0-9_\-.*]*)=:([A-Za-z0-9+/]*={0,2}):[ \t]*$/;

/** The signature bytes of member `label` of a `Signature` header value. */
export function signatureBytes(text: string, label: string): Uint8Array {
  const single = SINGLE_SIGNATURE.exec(text);
  if (single !== null && single[1] === label) {
    // Same forgiving-base64 rule as the full parser; anything else goes to the parser, which rejects it.
    let data = single[2] as string;
    if (data.length % 4 === 0) data = data.replace(/={1,2}$/, '');
    if (data.length % 4 !== 1 && !data.includes('=')) return Buffer.from(data, 'base64');
  }
  const signatures = parseDict(text, 'Signature');
  const member = signatures.get(label);
  if (member === undefined) throw new HttpSigError('missing_signature', `no Signature member ${label}`);
  const value = member[0];
  if (!(value instanceof Uint8Array)) throw malformed(`Signature ${label} is not a byte sequence`);
  return value;
}

/** Picks the signature to verify by label and/or tag. */
function selectSignature(
  inputs: SfDictionary,
  label: string | undefined,
  tag: string | undefined,
): [string, SfInnerList] {
  if (label !== undefined) {
    const member = inputs.get(label);
    if (member === undefined) throw new HttpSigError('missing_signature', `no signature labelled ${label}`);
    if (!Array.isArray(member[0])) throw malformed(`Signature-Input ${label} is not an inner list`);
    const input = member as SfInnerList;
    if (tag !== undefined && input[1].get('tag') !== tag) {
      throw new HttpSigError('tag_mismatch', `signature ${label} does not carry tag ${tag}`);
    }
    return [label, input];
  }
  for (const [name, member] of inputs) {
    if (tag !== undefined && member[1].get('tag') !== tag) continue;
    if (!Array.isArray(member[0])) throw malformed(`Signature-Input ${name} is not an inner list`);
    return [name, member as SfInnerList];
  }
  if (tag !== undefined) throw new HttpSigError('tag_mismatch', `no signature carries tag ${tag}`);
  throw new HttpSigError('missing_signature', 'Signature-Input is empty');
}

function requiredCanonical(required: readonly string[]): string[] {
  let list = requiredCache.get(required);
  if (list === undefined) {
    list = required.map((spec) => parseComponent(spec).canonical);
    requiredCache.set(required, list);
  }
  return list;
}

function isPinned(value: VerificationKeyInput | PinnedVerificationKey): value is PinnedVerificationKey {
  return typeof value === 'object' && !(value instanceof KeyObject) && 'key' in value && 'alg' in value;
}

function nowSeconds(now: number | Date | undefined): number {
  if (now === undefined) return Math.floor(Date.now() / 1000);
  return now instanceof Date ? Math.floor(now.getTime() / 1000) : now;
}

function checkTimes(params: SignatureParams, options: VerifyRequestOptions): void {
  const now = nowSeconds(options.now);
  const skew = options.clockSkewSeconds ?? DEFAULT_SKEW;
  const { created, expires } = params;
  if (created !== undefined && expires !== undefined && expires < created) {
    throw malformed('expires is before created');
  }
  if (created !== undefined && created > now + skew) {
    throw new HttpSigError('not_yet_valid', 'created lies in the future');
  }
  if (expires !== undefined && now > expires + skew) {
    throw new HttpSigError('expired', 'signature has expired');
  }
  if (options.maxAgeSeconds !== undefined) {
    if (created === undefined)
      throw new HttpSigError('missing_param', 'maxAgeSeconds needs a created parameter');
    if (now - created > options.maxAgeSeconds + skew) {
      throw new HttpSigError('expired', 'signature is older than maxAgeSeconds');
    }
  }
}

/**
 * Verifies one RFC 9421 signature of a request (or of a response, when `message.status` is set).
 *
 * Order of checks: headers present and parseable → signature selection (label/tag) → parameter syntax →
 * required components/params → time window → key lookup and key/alg match → signature base → cryptographic
 * check → Content-Digest against the body → nonce callback.
 *
 * Throws {@link HttpSigError} for every failure caused by the message; only errors thrown by the caller's
 * callbacks (`keyLookup`, `nonce`) pass through unchanged.
 *
 * @example
 * ```ts
 * const verified = await verifyRequest(message, {
 *   keyLookup: async (keyid) => registry.get(keyid)?.publicKey,
 *   requiredComponents: ['@method', '@path', 'content-digest'],
 *   requiredParams: ['created', 'expires', 'keyid', 'alg'],
 *   label: 'geo',
 * });
 * ```
 *
 * @public
 */
export async function verifyRequest(
  message: HttpMessage,
  options: VerifyRequestOptions,
): Promise<VerifiedSignature> {
  const inputText = headerText(message, 'signature-input');
  const signatureText = headerText(message, 'signature');
  if (inputText === undefined || signatureText === undefined) {
    throw new HttpSigError('missing_signature', 'Signature and Signature-Input headers are required');
  }
  // Members already in canonical form need no re-serialisation for @signature-params.
  const canonicalInputs = new Map<string, string>();
  const inputs = parseDict(inputText, 'Signature-Input', canonicalInputs);
  const [label, input] = selectSignature(inputs, options.label, options.tag);
  const signatureValue = signatureBytes(signatureText, label);

  const params = readSignatureParams(input[1]);
  const items = input[0];
  const components: ComponentId[] = new Array(items.length);
  const canonical: string[] = new Array(items.length);
  // Duplicate check: a linear scan for the usual handful of components, a Set for long (hostile) lists.
  const seen = items.length > 16 ? new Set<string>() : undefined;
  for (let i = 0; i < items.length; i++) {
    const component = componentFromItem(items[i]!);
    let duplicate = false;
    if (seen !== undefined) {
      duplicate = seen.has(component.serialized);
      seen.add(component.serialized);
    } else {
      for (let j = 0; j < i && !duplicate; j++)
        duplicate = components[j]!.serialized === component.serialized;
    }
    if (duplicate) throw malformed(`component ${component.canonical} is covered twice`);
    components[i] = component;
    canonical[i] = component.canonical;
  }

  if (options.requiredComponents !== undefined) {
    for (const required of requiredCanonical(options.requiredComponents)) {
      if (!canonical.includes(required)) {
        throw new HttpSigError('missing_component', `component ${required} is not covered`);
      }
    }
  }
  if (options.requiredParams !== undefined) {
    for (const name of options.requiredParams) {
      if (params[name] === undefined) throw new HttpSigError('missing_param', `parameter ${name} is missing`);
    }
  }
  checkTimes(params, options);

  const { keyid } = params;
  if (keyid === undefined) throw new HttpSigError('missing_param', 'parameter keyid is missing');
  let paramAlg: SignatureAlgorithm | undefined;
  if (params.alg !== undefined) {
    if (!isSignatureAlgorithm(params.alg)) throw new HttpSigError('unsupported', `algorithm ${params.alg}`);
    paramAlg = params.alg;
  }

  const found = await options.keyLookup(keyid, paramAlg);
  if (found === undefined || found === null) throw new HttpSigError('unknown_key', 'no key for this keyid');
  let pinnedAlg: SignatureAlgorithm | undefined;
  let key: KeyObject;
  if (isPinned(found)) {
    if (!isSignatureAlgorithm(found.alg))
      throw new HttpSigError('unsupported', `pinned algorithm ${found.alg}`);
    pinnedAlg = found.alg;
    key = importVerificationKey(found.key);
  } else {
    key = importVerificationKey(found);
  }
  if (paramAlg !== undefined && pinnedAlg !== undefined && paramAlg !== pinnedAlg) {
    throw new HttpSigError('alg_mismatch', `signature says ${paramAlg}, key is pinned to ${pinnedAlg}`);
  }
  const alg = paramAlg ?? pinnedAlg ?? algorithmForKey(key);
  if (alg === undefined) {
    throw new HttpSigError(
      'alg_mismatch',
      'no alg parameter and the key type does not determine the algorithm',
    );
  }
  if (options.algorithms !== undefined && !options.algorithms.includes(alg)) {
    throw new HttpSigError('alg_mismatch', `algorithm ${alg} is not accepted here`);
  }
  if (checkedKeys.get(key) !== alg) {
    assertKeyMatchesAlg(key, alg);
    checkedKeys.set(key, alg);
  }

  // RFC 9421 §3.2 step 3: @signature-params is the (canonical) serialisation of this Signature-Input member.
  let sigParams: string;
  try {
    sigParams = canonicalInputs.get(label) ?? serializeSfInnerList(input);
  } catch (err) {
    throw malformed('Signature-Input member cannot be serialised', err);
  }
  const base = signatureBaseString(message, components, sigParams, options.fieldTypes);
  let ok: boolean;
  try {
    ok = verifyBytes(alg, key, encodeBase(base), signatureValue);
  } catch (err) {
    throw new HttpSigError('bad_signature', 'signature verification failed', { cause: err });
  }
  if (!ok) throw new HttpSigError('bad_signature', 'signature verification failed');
  if (options.requireLowS === true && alg === 'ecdsa-p256-sha256' && !isLowS(signatureValue)) {
    throw new HttpSigError('bad_signature', 'ECDSA signature is not in low-s form');
  }

  if (
    message.body !== undefined &&
    options.checkContentDigest !== false &&
    canonical.includes('content-digest')
  ) {
    verifyContentDigest(headerText(message, 'content-digest') ?? '', message.body);
  }

  const verified: VerifiedSignature = {
    label,
    keyid,
    alg,
    created: params.created,
    expires: params.expires,
    nonce: params.nonce,
    tag: params.tag,
    components: canonical,
    signature: signatureValue,
  };
  if (options.nonce !== undefined) {
    if (params.nonce === undefined) throw new HttpSigError('missing_param', 'parameter nonce is missing');
    if (!(await options.nonce(params.nonce, verified))) {
      throw new HttpSigError('nonce_rejected', 'nonce was rejected');
    }
  }
  return verified;
}
