import { signatureBaseString } from './base.js';
import { type ComponentId, componentFromItem } from './components.js';
import { HttpSigError } from './errors.js';
import type { StructuredFieldType } from './fields.js';
import { parseSfDictionary, type SfInnerList, serializeSfInnerList } from './sf.js';
import type { HttpMessage } from './types.js';

/**
 * The RFC 9421 §2.5 signature base (as a string; field bytes are Latin-1 characters) that the member `label`
 * of `signatureInput` (a `Signature-Input` header value) covers in `message`. Useful for debugging and
 * interoperability checks; {@link verifyRequest} builds the same text internally.
 *
 * @public
 */
export function createSignatureBase(
  message: HttpMessage,
  signatureInput: string,
  label: string,
  options: { fieldTypes?: Readonly<Record<string, StructuredFieldType>> } = {},
): string {
  let member: ReturnType<ReturnType<typeof parseSfDictionary>['get']>;
  try {
    member = parseSfDictionary(signatureInput).get(label);
  } catch (err) {
    throw new HttpSigError('malformed', 'Signature-Input is not a structured dictionary', { cause: err });
  }
  if (member === undefined) throw new HttpSigError('missing_signature', `no signature labelled ${label}`);
  if (!Array.isArray(member[0]))
    throw new HttpSigError('malformed', `Signature-Input ${label} is not an inner list`);
  const input = member as SfInnerList;
  const components: ComponentId[] = [];
  const seen = new Set<string>();
  for (const item of input[0]) {
    const component = componentFromItem(item);
    if (seen.has(component.serialized)) {
      throw new HttpSigError('malformed', `component ${component.canonical} is covered twice`);
    }
    seen.add(component.serialized);
    components.push(component);
  }
  return signatureBaseString(message, components, serializeSfInnerList(input), options.fieldTypes);
}
