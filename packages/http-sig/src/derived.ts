import { httpbis } from 'http-message-signatures';
import type { ComponentId } from './components.js';
import { HttpSigError } from './errors.js';
import { queryParamValue } from './query-param.js';
import type { HttpMessage } from './types.js';

/** RFC 9110 method = token. Anything else could inject text into the signature base. */
const METHOD = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const NO_PARAMS = new Map<string, string | number | boolean>();
/** One WHATWG parse (`URL.canParse` followed by `new URL` would parse twice on the hot path). */
function parseUrl(raw: string, base?: string): URL | undefined {
  try {
    return new URL(raw, base);
  } catch {
    return undefined;
  }
}

/** Nothing outside visible ASCII belongs in a request target or absolute URI. */
const UNSAFE_URL_CHAR = /[^\x21-\x7e]/;
/**
 * Origin-form targets that WHATWG URL leaves untouched as `pathname`: a path of RFC 3986 pchars without
 * `%`, no query or fragment, not starting with `//`; dot segments are excluded by the caller (`/.`).
 */
const PLAIN_PATH = /^\/(?!\/)[A-Za-z0-9\-._~!$&'()*+,;=:@/]*$/;
/** Base for origin-form targets; `relative` marks that authority, scheme and target URI are unknown. */
const RELATIVE_BASE = 'http://relative.invalid';

/**
 * Per-message state for deriving components: the URL is parsed once however many components use it.
 */
export class DerivationContext {
  private parsed: URL | undefined;
  private relative = false;
  /** The raw target ends in an empty query (`/p?`), which WHATWG URL drops from `search`. */
  private loneQuestionMark = false;
  private libMessage: { method: string; url: URL; headers: Record<string, never> } | undefined;

  constructor(readonly message: HttpMessage) {}

  private url(component: ComponentId): URL {
    if (this.message.status !== undefined) {
      throw new HttpSigError('missing_component', `${component.name} cannot be derived from a response`);
    }
    if (this.parsed === undefined) {
      // String(): tolerate a URL object passed where a string is declared.
      const raw = String(this.message.url);
      // Origin-form (`/p?q`) gets a placeholder base; `//host/p` is a network-path reference, not a target.
      const origin = raw.charCodeAt(0) === 0x2f /* / */;
      const parsed = origin
        ? raw.charCodeAt(1) === 0x2f
          ? undefined
          : parseUrl(raw, RELATIVE_BASE)
        : parseUrl(raw);
      if (parsed === undefined) {
        throw new HttpSigError(
          'malformed',
          'message url is neither an absolute URL nor an origin-form target',
        );
      }
      this.parsed = parsed;
      this.relative = origin;
      this.assertNormalTarget(raw, this.parsed);
    }
    if (
      this.relative &&
      (component.name === '@authority' || component.name === '@scheme' || component.name === '@target-uri')
    ) {
      throw new HttpSigError('missing_component', `${component.name} needs an absolute message url`);
    }
    return this.parsed;
  }

  /**
   * Refuses targets that WHATWG URL parsing would rewrite (`\\` → `/`, dot segments, stripped tabs/newlines,
   * escaped spaces, ...). Otherwise two different request targets — routed differently by a server that looks
   * at the raw target — would share one `@path`/`@query` value, and a signature for one would verify for the other.
   */
  private assertNormalTarget(raw: string, url: URL): void {
    // URL parsing silently strips surrounding spaces/controls and embedded tabs/newlines: refuse them outright.
    if (UNSAFE_URL_CHAR.test(raw)) {
      throw new HttpSigError('malformed', 'message url contains whitespace, control or non-ASCII characters');
    }
    let start = 0;
    if (!this.relative) {
      const afterScheme = raw.indexOf('://');
      start = raw.length;
      for (let i = afterScheme < 0 ? 0 : afterScheme + 3; i < raw.length; i++) {
        const c = raw.charCodeAt(i);
        if (c === 0x2f || c === 0x3f || c === 0x23) {
          start = i;
          break;
        }
      }
    }
    const hashAt = raw.indexOf('#', start);
    let target = raw.slice(start, hashAt < 0 ? raw.length : hashAt);
    if (target === '' || target.charCodeAt(0) === 0x3f) target = `/${target}`;
    this.loneQuestionMark = url.search === '' && target.endsWith('?');
    const normal = url.pathname + url.search + (this.loneQuestionMark ? '?' : '');
    if (target !== normal) {
      throw new HttpSigError(
        'malformed',
        'request target is not in normalised form (WHATWG URL would rewrite it)',
      );
    }
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
      case '@path': {
        // Fast path for the usual `/metrics`-style target: no URL parse; the value is the target itself,
        // exactly what the parse would yield (property-tested against it).
        const raw = this.message.url;
        if (
          this.parsed === undefined &&
          this.message.status === undefined &&
          typeof raw === 'string' &&
          PLAIN_PATH.test(raw) &&
          !raw.includes('/.')
        ) {
          return raw;
        }
        return this.viaLibrary(component);
      }
      case '@authority':
      case '@scheme':
      case '@query':
        return this.viaLibrary(component);
      case '@request-target':
        return this.viaLibrary(component) + (this.loneQuestionMark ? '?' : '');
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
