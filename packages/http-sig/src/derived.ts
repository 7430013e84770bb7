import { httpbis } from 'http-message-signatures';
import type { ComponentId } from './components.js';
import { HttpSigError } from './errors.js';
import { queryParamValue } from './query-param.js';
import type { HttpMessage } from './types.js';

/** RFC 9110 method = token. Anything else could inject text into the signature base. */
const METHOD = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const NO_PARAMS = new Map<string, string | number | boolean>();
/** Base for origin-form targets; `relative` marks that authority, scheme and target URI are unknown. */
const RELATIVE_BASE = 'http://relative.invalid';

/**
 * Per-message state for deriving components: the URL is parsed once however many components use it.
 */
export class DerivationContext {
  private parsed: URL | undefined;
  private relative = false;
  private libMessage: { method: string; url: URL; headers: Record<string, never> } | undefined;

  constructor(readonly message: HttpMessage) {}

  private url(component: ComponentId): URL {
    if (this.message.status !== undefined) {
      throw new HttpSigError('missing_component', `${component.name} cannot be derived from a response`);
    }
    if (this.parsed === undefined) {
      const raw = this.message.url;
      if (URL.canParse(raw)) {
        this.parsed = new URL(raw);
      } else if (raw.startsWith('/') && URL.canParse(raw, RELATIVE_BASE)) {
        this.parsed = new URL(raw, RELATIVE_BASE);
        this.relative = true;
      } else {
        throw new HttpSigError(
          'malformed',
          'message url is neither an absolute URL nor an origin-form target',
        );
      }
    }
    if (
      this.relative &&
      (component.name === '@authority' || component.name === '@scheme' || component.name === '@target-uri')
    ) {
      throw new HttpSigError('missing_component', `${component.name} needs an absolute message url`);
    }
    return this.parsed;
  }

  /** `http-message-signatures` derives these correctly when handed an already parsed URL. */
  private viaLibrary(component: ComponentId): string {
    const url = this.url(component);
    this.libMessage ??= { method: 'GET', url, headers: {} };
    const values = httpbis.deriveComponent(component.name, NO_PARAMS, this.libMessage);
    return values[0] as string;
  }

  /** Component value of a derived component (RFC 9421 §2.2). */
  value(component: ComponentId): string {
    switch (component.name) {
      case '@method': {
        if (this.message.status !== undefined) {
          throw new HttpSigError('missing_component', '@method cannot be derived from a response');
        }
        // §2.2.1: case preserved (the library upper-cases it).
        const method = this.message.method;
        if (!METHOD.test(method)) throw new HttpSigError('malformed', 'request method is not a token');
        return method;
      }
      case '@target-uri': {
        // §2.2.2: the target URI never includes a fragment (the library keeps it).
        const url = this.url(component);
        return url.hash === '' ? url.href : url.href.slice(0, url.href.length - url.hash.length);
      }
      case '@authority':
      case '@scheme':
      case '@path':
      case '@query':
        return this.viaLibrary(component);
      case '@request-target': {
        // An empty query (`/p?`) is part of the request target; WHATWG URL drops the lone `?`.
        const value = this.viaLibrary(component);
        const raw = this.message.url;
        const hashAt = raw.indexOf('#');
        const end = hashAt < 0 ? raw.length : hashAt;
        return this.parsed?.search === '' && raw.charCodeAt(end - 1) === 0x3f ? `${value}?` : value;
      }
      case '@query-param': {
        const url = this.url(component);
        return queryParamValue(url.search, component.params.get('name') as string);
      }
      case '@status': {
        const status = this.message.status;
        if (status === undefined) throw new HttpSigError('missing_component', '@status needs a response');
        if (!Number.isInteger(status) || status < 100 || status > 999) {
          throw new HttpSigError('malformed', 'status must be a three-digit integer');
        }
        return String(status);
      }
      default:
        throw new HttpSigError('unsupported', `derived component ${component.name} is not supported`);
    }
  }
}
