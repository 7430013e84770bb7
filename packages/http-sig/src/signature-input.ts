/**
 * The one reader of `Signature-Input` (RFC 9421 §4.1): its members' covered components and the
 * signature parameters. `verifyRequest` reads parameters through {@link readSignatureParams}, and
 * everything else that needs to look into the header (a rate limiter's claimed keyid, an outbox's
 * `expires`, an offline re-verification's `created`) calls {@link parseSignatureInput} instead of a
 * regular expression of its own, which would disagree with the parser on quoting and escapes.
 */
import { componentFromItem } from './components.js';
import { HttpSigError } from './errors.js';
import { parseSfDictionary, type SfInnerList, type SfParameters } from './sf.js';

/** The signature parameters of RFC 9421 §2.3 that this library interprets. */
export interface SignatureParams {
  /** `created` (Unix seconds). */
  created: number | undefined;
  /** `expires` (Unix seconds). */
  expires: number | undefined;
  /** `keyid`. */
  keyid: string | undefined;
  /** `alg`. */
  alg: string | undefined;
  /** `nonce`. */
  nonce: string | undefined;
  /** `tag`. */
  tag: string | undefined;
}

/** One member of a `Signature-Input` header. */
export interface SignatureInputMember extends SignatureParams {
  /** The member's label (`geo` in `geo=(…)`). */
  label: string;
  /** Covered components in API form (`@method`, `content-digest`, `@query-param;name="a"`), in order. */
  components: string[];
}

/** Typed parameters of a `Signature-Input` member (throws `malformed` on a wrongly typed one). */
export function readSignatureParams(params: SfParameters): SignatureParams {
  const out: SignatureParams = {
    created: undefined,
    expires: undefined,
    keyid: undefined,
    alg: undefined,
    nonce: undefined,
    tag: undefined,
  };
  for (const [key, value] of params) {
    switch (key) {
      case 'created':
      case 'expires':
        if (typeof value !== 'number' || !Number.isInteger(value))
          throw new HttpSigError('malformed', `${key} must be an integer`);
        out[key] = value;
        break;
      case 'keyid':
      case 'alg':
      case 'nonce':
      case 'tag':
        if (typeof value !== 'string') throw new HttpSigError('malformed', `${key} must be a string`);
        out[key] = value;
        break;
      default:
        // Unknown parameters are allowed (RFC 9421 §6.3 registry); they are covered by @signature-params.
        break;
    }
  }
  return out;
}

/**
 * Parses a `Signature-Input` header value into its members, in header order. Throws
 * {@link HttpSigError} `malformed` (or `unsupported` for an unknown derived component) when the value
 * is not a dictionary of inner lists with well-typed parameters. Parsing verifies nothing: the
 * values are claims until `verifyRequest` checked the signature.
 * @public
 */
export function parseSignatureInput(text: string): SignatureInputMember[] {
  let dict: ReturnType<typeof parseSfDictionary>;
  try {
    dict = parseSfDictionary(text);
  } catch (err) {
    throw new HttpSigError('malformed', 'Signature-Input is not a structured dictionary', { cause: err });
  }
  const out: SignatureInputMember[] = [];
  for (const [label, member] of dict) {
    if (!Array.isArray(member[0]))
      throw new HttpSigError('malformed', `Signature-Input ${label} is not an inner list`);
    const [items, params] = member as SfInnerList;
    out.push({
      label,
      components: items.map((item) => componentFromItem(item).canonical),
      ...readSignatureParams(params),
    });
  }
  return out;
}
