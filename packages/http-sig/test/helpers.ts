import { readFileSync } from 'node:fs';
import { type HttpMessage, HttpSigError } from '../src/index.js';

const FIXTURES = new URL('./fixtures/rfc9421/', import.meta.url);

/** Reads a fixture file as text. */
export function fixture(name: string): string {
  return readFileSync(new URL(name, FIXTURES), 'utf8');
}

/**
 * Parses an RFC 9421 Appendix B example message (HTTP/1.1 text). Requests get an https URL built from Host,
 * as in the RFC's examples; responses get `status`.
 */
export function parseHttpText(text: string): HttpMessage & { headers: Record<string, string[]> } {
  const split = text.indexOf('\n\n');
  const head = split < 0 ? text : text.slice(0, split);
  const body = split < 0 ? '' : text.slice(split + 2).replace(/\n$/, '');
  const [startLine, ...lines] = head.split('\n');
  const headers: Record<string, string[]> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).toLowerCase();
    const values = headers[name] ?? [];
    values.push(line.slice(colon + 1).trim());
    headers[name] = values;
  }
  const parts = (startLine ?? '').split(' ');
  if (parts[0]?.startsWith('HTTP/')) {
    return { method: '', url: '', headers, body, status: Number(parts[1]) };
  }
  return { method: parts[0] ?? '', url: `https://${headers.host?.[0]}${parts[1]}`, headers, body };
}

/** The `HttpSigError` code `f` throws, or `'none'`; any other error is rethrown. */
export function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    if (err instanceof HttpSigError) return err.code;
    throw err;
  }
  return 'none';
}
