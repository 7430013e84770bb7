/**
 * Compiles a zod schema into a plain predicate for the hot path: `check(v)` is true only when the
 * schema accepts `v` unchanged (its parse result deep-equals `v`), without the copy zod makes of
 * every object it parses (which costs more than the rest of request validation together).
 *
 * The predicate is derived from the schema's own definitions (`schema._zod.def`): its regexes,
 * bounds, literals and shapes, so there is one definition and no hand-kept twin. It understands a
 * small set of nodes — strict/strip objects, strings with length, regex and ISO date-time checks,
 * numbers with bounds and `int`, literals, enums, optionals, `record(string, unknown)` and arrays
 * with length checks; anything else (transforms, refinements, defaults, coercion, unions, …)
 * compiles to "false". False never means invalid: the caller then parses with zod, which decides
 * and produces the error details. A property test checks the soundness against zod itself.
 */
import type { z } from 'zod';

/**
 * A predicate compiled from a schema: true only for values the schema accepts unchanged.
 * @public
 */
export type SchemaCheck = (v: unknown) => boolean;

/** The parts of zod v4's internal definitions this compiler reads (all optional: be defensive). */
interface Def {
  type?: string;
  checks?: ReadonlyArray<{ _zod: { def: CheckDef } }>;
  coerce?: boolean;
  shape?: Record<string, Schema>;
  catchall?: Schema;
  innerType?: Schema;
  keyType?: Schema;
  valueType?: Schema;
  element?: Schema;
  // A string-format schema (z.iso.datetime()) is itself a check.
  check?: string;
  format?: string;
  pattern?: RegExp;
}
interface CheckDef {
  check?: string;
  format?: string;
  pattern?: RegExp;
  minimum?: number;
  maximum?: number;
  length?: number;
  value?: number;
  inclusive?: boolean;
}
interface Schema {
  _zod: { def: Def; values?: ReadonlySet<unknown> };
}

const NEVER: SchemaCheck = () => false;

/** A regex zod tests with `.test` and that keeps no state between calls (no `g`/`y` flag). */
function statelessRegex(p: unknown): RegExp | undefined {
  return p instanceof RegExp && !p.global && !p.sticky ? p : undefined;
}

/** Plain data objects as JSON.parse makes them (other prototypes: zod decides). */
function isPlainObject(v: unknown): v is Record<string, unknown> {
  return (
    typeof v === 'object' &&
    v !== null &&
    Object.getPrototypeOf(v) === Object.prototype &&
    Object.getOwnPropertySymbols(v).length === 0
  );
}

/**
 * The string checks zod runs, as a list of predicates; undefined when one is not understood. A
 * check's `when` (zod skips the check when it says no) is ignored: running the check anyway can
 * only refuse more, never accept what zod refuses.
 */
function stringChecks(def: Def): Array<(s: string) => boolean> | undefined {
  const out: Array<(s: string) => boolean> = [];
  const all: CheckDef[] = (def.checks ?? []).map((c) => c._zod.def);
  // z.iso.datetime() & co: the schema is its own format check.
  if (def.check !== undefined) all.unshift(def);
  for (const c of all) {
    switch (c.check) {
      case 'min_length': {
        const n = c.minimum;
        if (typeof n !== 'number') return undefined;
        out.push((s) => s.length >= n);
        break;
      }
      case 'max_length': {
        const n = c.maximum;
        if (typeof n !== 'number') return undefined;
        out.push((s) => s.length <= n);
        break;
      }
      case 'string_format': {
        // Only formats that are nothing but their pattern (zod tests `pattern` and nothing else).
        const re = statelessRegex(c.pattern);
        if (re === undefined || (c.format !== 'regex' && c.format !== 'datetime')) return undefined;
        out.push((s) => re.test(s));
        break;
      }
      default:
        return undefined;
    }
  }
  return out;
}

/** The number checks zod runs (z.number() itself refuses NaN and ±Infinity). */
function numberChecks(def: Def): Array<(n: number) => boolean> | undefined {
  const out: Array<(n: number) => boolean> = [];
  for (const { _zod } of def.checks ?? []) {
    const c = _zod.def;
    if (c.check === 'greater_than' && typeof c.value === 'number') {
      const min = c.value;
      out.push(c.inclusive ? (n) => n >= min : (n) => n > min);
    } else if (c.check === 'less_than' && typeof c.value === 'number') {
      const max = c.value;
      out.push(c.inclusive ? (n) => n <= max : (n) => n < max);
    } else if (c.check === 'number_format' && c.format === 'safeint') {
      out.push(Number.isSafeInteger);
    } else return undefined;
  }
  return out;
}

function all<T>(checks: ReadonlyArray<(v: T) => boolean>): (v: T) => boolean {
  if (checks.length === 0) return () => true;
  if (checks.length === 1) return checks[0]!;
  if (checks.length === 2) {
    const [a, b] = checks as [(v: T) => boolean, (v: T) => boolean];
    return (v) => a(v) && b(v);
  }
  return (v) => {
    for (let i = 0; i < checks.length; i++) if (!checks[i]!(v)) return false;
    return true;
  };
}

function compileNode(schema: Schema): SchemaCheck {
  const zod = schema?._zod;
  const def = zod?.def;
  if (def === undefined || def.coerce) return NEVER;
  const noChecks = def.checks === undefined || def.checks.length === 0;
  switch (def.type) {
    case 'string': {
      const checks = stringChecks(def);
      if (checks === undefined) return NEVER;
      const ok = all(checks);
      return (v) => typeof v === 'string' && ok(v);
    }
    case 'number': {
      const checks = numberChecks(def);
      if (checks === undefined) return NEVER;
      const ok = all(checks);
      return (v) => typeof v === 'number' && Number.isFinite(v) && ok(v);
    }
    case 'literal':
    case 'enum': {
      const values = zod.values;
      if (!noChecks || !(values instanceof Set)) return NEVER;
      return (v) => values.has(v);
    }
    case 'optional': {
      if (!noChecks || def.innerType === undefined) return NEVER;
      const inner = compileNode(def.innerType);
      return (v) => v === undefined || inner(v);
    }
    case 'unknown':
    case 'any':
      return noChecks ? () => true : NEVER;
    case 'record': {
      // Only record(string, unknown): zod then copies the own string keys as they are, except an
      // own `__proto__`, which its copy loses (so such a value is not accepted unchanged).
      const k = def.keyType?._zod.def;
      const value = def.valueType === undefined ? NEVER : compileNode(def.valueType);
      if (!noChecks || k?.type !== 'string' || k.coerce || (k.checks?.length ?? 0) > 0) return NEVER;
      return (v) => {
        if (!isPlainObject(v) || Object.hasOwn(v, '__proto__')) return false;
        for (const key in v) if (!value(v[key])) return false;
        return true;
      };
    }
    case 'array': {
      const element = def.element === undefined ? NEVER : compileNode(def.element);
      const lengths: Array<(n: number) => boolean> = [];
      for (const { _zod } of def.checks ?? []) {
        const c = _zod.def;
        if (c.check === 'min_length' && typeof c.minimum === 'number') {
          const n = c.minimum;
          lengths.push((l) => l >= n);
        } else if (c.check === 'max_length' && typeof c.maximum === 'number') {
          const n = c.maximum;
          lengths.push((l) => l <= n);
        } else if (c.check === 'length_equals' && typeof c.length === 'number') {
          const n = c.length;
          lengths.push((l) => l === n);
        } else return NEVER;
      }
      const lengthOk = all(lengths);
      return (v) => {
        if (!Array.isArray(v) || Object.getPrototypeOf(v) !== Array.prototype || !lengthOk(v.length))
          return false;
        for (let i = 0; i < v.length; i++) if (!(i in v) || !element(v[i])) return false;
        return true;
      };
    }
    case 'object': {
      // Strict (`catchall: never`) refuses unknown members, strip drops them: either way a value
      // with unknown members is not accepted unchanged.
      const catchall = def.catchall?._zod.def.type;
      if (!noChecks || def.shape === undefined || (catchall !== undefined && catchall !== 'never'))
        return NEVER;
      const shape = def.shape;
      const keys = Object.keys(shape);
      const known = new Set(keys);
      const members = keys.map((k) => compileNode(shape[k]!));
      return (v) => {
        if (!isPlainObject(v)) return false;
        for (const k in v) if (!known.has(k)) return false;
        for (let i = 0; i < keys.length; i++) if (!members[i]!(v[keys[i]!])) return false;
        return true;
      };
    }
    default:
      return NEVER;
  }
}

/**
 * Compile `schema` into a predicate that is true only for values the schema accepts unchanged
 * (`schema.safeParse(v)` succeeds and its data deep-equals `v`); false means "ask zod", never
 * "invalid". Compile once (module or factory level), call per request.
 * @public
 */
export function compileSchemaCheck(schema: z.ZodType): SchemaCheck {
  return compileNode(schema as unknown as Schema);
}
