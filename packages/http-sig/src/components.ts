import { HttpSigError } from './errors.js';
import { parseSfItem, type SfItem, type SfParameters, serializeSfItem } from './sf.js';

/**
 * A parsed, validated RFC 9421 component identifier (§2).
 *
 * @public
 */
export interface ComponentId {
  /** Lowercase component name: a field name or a derived name starting with `@`. */
  readonly name: string;
  /** Component parameters (`sf`, `key`, `bs` are `true` or strings; `name` is a string). */
  readonly params: ReadonlyMap<string, string | boolean>;
  /** Identifier as it appears in `Signature-Input` and the signature base: `"name";k=v`. */
  readonly serialized: string;
  /** Identifier without the quotes around the name (`@query-param;name="Pet"`): the API-facing form. */
  readonly canonical: string;
}

/**
 * Derived component names of RFC 9421 §2.2 this package supports.
 *
 * @public
 */
export const DERIVED_COMPONENTS: readonly string[] = Object.freeze([
  '@method',
  '@target-uri',
  '@authority',
  '@scheme',
  '@request-target',
  '@path',
  '@query',
  '@query-param',
  '@status',
]);

const DERIVED = new Set(DERIVED_COMPONENTS);
/** RFC 9110 field-name = token; RFC 9421 requires it lowercased in identifiers. */
const FIELD_NAME = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;

function fail(code: 'malformed' | 'unsupported', message: string): never {
  throw new HttpSigError(code, message);
}

function validateParams(name: string, params: SfParameters): void {
  if (name.startsWith('@')) {
    for (const [key, value] of params) {
      if (name === '@query-param' && key === 'name') {
        if (typeof value !== 'string') fail('malformed', '@query-param name must be a string');
      } else if (key === 'req') {
        fail('unsupported', 'request-bound components (req) are not supported');
      } else {
        fail('unsupported', `parameter "${key}" is not supported on ${name}`);
      }
    }
    if (name === '@query-param' && !params.has('name'))
      fail('malformed', '@query-param needs a name parameter');
    return;
  }
  for (const [key, value] of params) {
    if (key === 'sf' || key === 'bs') {
      if (value !== true) fail('malformed', `parameter ${key} must be the boolean true`);
    } else if (key === 'key') {
      if (typeof value !== 'string') fail('malformed', 'parameter key must be a string');
    } else if (key === 'req' || key === 'tr') {
      fail('unsupported', `parameter "${key}" (request-bound / trailer components) is not supported`);
    } else {
      fail('unsupported', `parameter "${key}" is not supported on field ${name}`);
    }
  }
  // RFC 9421 §2.1.3: bs cannot be combined with sf (key implies sf).
  if (params.has('bs') && (params.has('sf') || params.has('key'))) {
    fail('malformed', 'bs cannot be combined with sf or key');
  }
}

/**
 * Builds a {@link ComponentId} from a parsed structured-field Item (an entry of a `Signature-Input` inner list).
 * Throws `malformed` or `unsupported`.
 */
export function componentFromItem(item: SfItem): ComponentId {
  const [name, params] = item;
  if (typeof name !== 'string') fail('malformed', 'component identifiers must be strings');
  // Parameterless identifiers repeat on every request: reuse the validated object (bounded cache).
  const plain = params.size === 0 ? plainCache.get(name) : undefined;
  if (plain !== undefined) return plain;
  if (name === '@signature-params') fail('malformed', '@signature-params must not be a covered component');
  if (name.startsWith('@')) {
    if (!DERIVED.has(name)) fail('unsupported', `derived component ${name} is not supported`);
  } else if (!FIELD_NAME.test(name)) {
    fail('malformed', `"${name}" is not a lowercase field name`);
  }
  validateParams(name, params);
  const serialized = params.size === 0 ? `"${name}"` : serializeSfItem([name, params]);
  const canonical = params.size === 0 ? name : `${name}${serialized.slice(name.length + 2)}`;
  // validateParams admitted only string and boolean values.
  const component = { name, params: params as ReadonlyMap<string, string | boolean>, serialized, canonical };
  if (params.size === 0) {
    // Clear rather than stop caching when full, so names sent by an attacker cannot pin the cache forever.
    if (plainCache.size >= PLAIN_CACHE_MAX) plainCache.clear();
    plainCache.set(name, component);
  }
  return component;
}

/** Validated parameterless identifiers by name; capped so hostile inputs cannot grow it without bound. */
const plainCache = new Map<string, ComponentId>();
const PLAIN_CACHE_MAX = 256;

const specCache = new Map<string, ComponentId>();
const SPEC_CACHE_MAX = 512;

/**
 * Parses a component identifier as written by API users: `@method`, `content-digest`,
 * `@query-param;name="Pet"`, `example-dict;key="a"`, or the quoted form `"example-dict";sf`.
 * Results are cached (identifier lists are usually constants).
 *
 * @public
 */
export function parseComponent(spec: string): ComponentId {
  const cached = specCache.get(spec);
  if (cached !== undefined) return cached;
  let item: SfItem;
  if (spec.startsWith('"')) {
    item = parseItemOrThrow(spec);
  } else {
    const semi = spec.indexOf(';');
    const name = semi < 0 ? spec : spec.slice(0, semi);
    if (!/^@?[!#$%&'*+\-.^_`|~0-9a-z]+$/.test(name)) fail('malformed', `invalid component name "${name}"`);
    item = parseItemOrThrow(`"${name}"${semi < 0 ? '' : spec.slice(semi)}`);
  }
  const component = componentFromItem(item);
  if (specCache.size >= SPEC_CACHE_MAX) specCache.clear();
  specCache.set(spec, component);
  return component;
}

function parseItemOrThrow(text: string): SfItem {
  try {
    return parseSfItem(text);
  } catch (err) {
    throw new HttpSigError('malformed', `invalid component identifier ${JSON.stringify(text)}`, {
      cause: err,
    });
  }
}

/**
 * Parses a list of identifiers and rejects duplicates (RFC 9421 §2.5: a component may be covered only once).
 */
export function parseComponentList(specs: readonly string[]): ComponentId[] {
  const out: ComponentId[] = [];
  const seen = new Set<string>();
  for (const spec of specs) {
    const c = parseComponent(spec);
    if (seen.has(c.serialized)) fail('malformed', `component ${c.canonical} is listed twice`);
    seen.add(c.serialized);
    out.push(c);
  }
  return out;
}
