import type { ComponentId } from './components.js';
import { DerivationContext } from './derived.js';
import { fieldComponentValue, type StructuredFieldType } from './fields.js';
import type { HttpMessage } from './types.js';

/**
 * Builds the RFC 9421 §2.5 signature base as a string.
 *
 * `signatureParams` is the serialised `@signature-params` value (inner list of the covered components
 * followed by the signature parameters). Lines are joined with LF; there is no trailing newline.
 */
export function signatureBaseString(
  message: HttpMessage,
  components: readonly ComponentId[],
  signatureParams: string,
  fieldTypes?: Readonly<Record<string, StructuredFieldType>>,
): string {
  let derived: DerivationContext | undefined;
  let base = '';
  for (const component of components) {
    let value: string;
    if (component.name.charCodeAt(0) === 0x40 /* @ */) {
      derived ??= new DerivationContext(message);
      value = derived.value(component);
    } else {
      value = fieldComponentValue(message.headers, component, fieldTypes);
    }
    base += `${component.serialized}: ${value}\n`;
  }
  return `${base}"@signature-params": ${signatureParams}`;
}

/**
 * Encodes a signature base for signing: HTTP field values are byte strings (one char per byte), so Latin-1 maps
 * them back to the bytes received. Derived values and structured serialisations are ASCII.
 */
export function encodeBase(base: string): Buffer {
  return Buffer.from(base, 'latin1');
}
