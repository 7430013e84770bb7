/**
 * The place table shared by agent and verifier (SPEC §5.1, issue 16): countries and unions
 * (ISO 3166-1, the EU) from `@rapideditor/country-coder` (OpenStreetMap-derived borders, ISC), and
 * first-level subdivisions (ISO 3166-2) of US, DE, FR, MX and CH from Natural Earth 1:10m Admin 1
 * (public domain; generated into ./data by scripts/gen-subdivisions.mjs). Pure data and lookups,
 * no I/O. The agent labels GNSS fixes with it; the verifier resolves policy names and checks
 * claims and accuracy circles against the same polygons.
 */
import * as countryCoder from '@rapideditor/country-coder';
import type { GeographicRegion } from '../protocol.js';
import { SUBDIVISIONS_JSON } from './data/subdivisions.js';
import { foldPlaceName } from './fold.js';
import {
  type CompiledPolygon,
  circleInside,
  circleOutside,
  compilePolygonList,
  pointInside,
} from './polygon.js';

/**
 * A named area of the place table.
 * @public
 */
export interface Place {
  /** `union` (e.g. the EU), `country` (ISO 3166-1 country or territory) or `subdivision` (ISO 3166-2). */
  readonly kind: 'union' | 'country' | 'subdivision';
  /** ISO code: `EU`, `DE`, `US-CA`, `FR-GES`. */
  readonly code: string;
  /** Name in the table (`Germany`, `California`, `Grand Est`). */
  readonly name: string;
  /** ISO 3166-1 code of the country a subdivision belongs to. */
  readonly country?: string;
}

interface SubdivisionRecord {
  code: string;
  name: string;
  aliases: string[];
  polygons: number[][][][];
}

interface Tables {
  /** Folded code / name / alias → union or country. */
  regions: Map<string, Place>;
  /** Country code → folded code / short code / name / alias → subdivision. */
  subdivisions: Map<string, Map<string, Place>>;
  /** Country code → its subdivision records (in table order). */
  subdivisionList: Map<string, Place[]>;
  /** Subdivision code → raw polygons (compiled on first use). */
  subdivisionPolygons: Map<string, number[][][][]>;
}

let tables: Tables | undefined;

/** Builds the name indexes on first use: startup of code that never looks up a place stays free. */
function load(): Tables {
  if (tables) return tables;
  const regions = new Map<string, Place>();
  // Countries before territories before unions, so an alias shared by two features (rare) names
  // the sovereign country.
  const rank: Record<string, number> = { country: 0, territory: 1, subterritory: 2, union: 3 };
  const features = countryCoder.borders.features
    .filter((f) => f.properties.iso1A2 !== undefined && rank[f.properties.level] !== undefined)
    .sort((a, b) => rank[a.properties.level]! - rank[b.properties.level]!);
  for (const f of features) {
    const p = f.properties;
    const place: Place = Object.freeze({
      kind: p.level === 'union' ? 'union' : 'country',
      code: p.iso1A2!,
      name: p.nameEn,
    });
    for (const n of [p.iso1A2, p.iso1A3, p.nameEn, ...(p.aliases ?? [])]) {
      if (typeof n !== 'string' || n === '') continue;
      const k = foldPlaceName(n);
      if (!regions.has(k)) regions.set(k, place);
    }
  }
  const doc = JSON.parse(SUBDIVISIONS_JSON) as { countries: Record<string, SubdivisionRecord[]> };
  const subdivisions = new Map<string, Map<string, Place>>();
  const subdivisionList = new Map<string, Place[]>();
  const subdivisionPolygons = new Map<string, number[][][][]>();
  for (const [country, records] of Object.entries(doc.countries)) {
    const byName = new Map<string, Place>();
    const ambiguous = new Set<string>();
    const list: Place[] = [];
    for (const r of records) {
      const place: Place = Object.freeze({ kind: 'subdivision', code: r.code, name: r.name, country });
      list.push(place);
      subdivisionPolygons.set(r.code, r.polygons);
      for (const n of r.aliases) {
        const k = foldPlaceName(n);
        const prev = byName.get(k);
        // An alias two subdivisions share names neither (no guessing which one was meant).
        if (prev && prev !== place) ambiguous.add(k);
        else byName.set(k, place);
      }
    }
    // Codes and primary names always resolve, even when some other unit lists them as an alias.
    for (const p of list) {
      byName.set(foldPlaceName(p.code), p);
      byName.set(foldPlaceName(p.name), p);
      ambiguous.delete(foldPlaceName(p.code));
      ambiguous.delete(foldPlaceName(p.name));
    }
    for (const k of ambiguous) byName.delete(k);
    subdivisions.set(country, byName);
    subdivisionList.set(country, list);
  }
  tables = { regions, subdivisions, subdivisionList, subdivisionPolygons };
  return tables;
}

/**
 * The union or country a region name denotes: ISO 3166-1 alpha-2 or alpha-3 code, English name
 * or alias (`DE`, `DEU`, `Germany`; `EU`, `European Union`; `US`, `United States of America`),
 * compared with {@link foldPlaceName}. `undefined` when the table does not know the name.
 * @public
 */
export function findRegion(name: string): Place | undefined {
  if (name === '') return undefined;
  return load().regions.get(foldPlaceName(name));
}

/**
 * The place a state name denotes inside `region`: for a union, a member country (`EU` /
 * `Germany`); for a country, one of its first-level subdivisions by ISO 3166-2 code (`US-CA`),
 * code suffix (`CA`) or name (`California`, `Bayern`, `Bavaria`). `undefined` when unknown.
 * @public
 */
export function findState(region: Place, name: string): Place | undefined {
  if (name === '') return undefined;
  if (region.kind === 'union') {
    const c = findRegion(name);
    return c && c.kind === 'country' && countryCoder.isIn(c.code, region.code) ? c : undefined;
  }
  if (region.kind !== 'country') return undefined;
  return load().subdivisions.get(region.code)?.get(foldPlaceName(name));
}

/**
 * Whether the table has first-level subdivisions for a country (ISO 3166-1 alpha-2).
 * @public
 */
export function hasSubdivisions(country: string): boolean {
  return load().subdivisions.has(country);
}

const polygonCache = new Map<string, CompiledPolygon[]>();

function polygonsOf(place: Place): CompiledPolygon[] {
  let polys = polygonCache.get(place.code);
  if (polys) return polys;
  polys = compilePolygonList(placeOutline(place));
  polygonCache.set(place.code, polys);
  return polys;
}

/**
 * The outline of a place as GeoJSON `MultiPolygon` coordinates (`[lon, lat]` rings, WGS 84): the
 * same polygons the containment checks use, for drawing a policy's places on a map.
 * @public
 */
export function placeOutline(place: Place): number[][][][] {
  if (place.kind === 'subdivision') return load().subdivisionPolygons.get(place.code) ?? [];
  const g = countryCoder.aggregateFeature(place.code)?.geometry;
  return g?.type === 'Polygon' ? [g.coordinates] : g?.type === 'MultiPolygon' ? g.coordinates : [];
}

/**
 * Whether the whole accuracy circle (radius `accuracy` metres) lies inside one polygon of the
 * place (conservative, SPEC §5.3; the rule fences use). A circle across an internal border of a
 * union (e.g. DE/FR inside the EU) is not inside: each member's land is a separate polygon.
 * @public
 */
export function placeContainsCircle(place: Place, lat: number, lon: number, accuracy: number): boolean {
  return polygonsOf(place).some((p) => circleInside(p, lon, lat, accuracy));
}

/**
 * Whether the whole accuracy circle lies outside the place (no polygon of it within `accuracy`
 * metres of the point; distances never overestimated, so "outside" is certain).
 * @public
 */
export function placeExcludesCircle(place: Place, lat: number, lon: number, accuracy: number): boolean {
  return polygonsOf(place).every((p) => circleOutside(p, lon, lat, accuracy));
}

/**
 * Whether the point lies in the place, boundary included.
 * @public
 */
export function placeContainsPoint(place: Place, lat: number, lon: number): boolean {
  return polygonsOf(place).some((p) => pointInside(p, lon, lat));
}

/**
 * Where a point is according to the table: the country or territory (ISO 3166-1) and, where the
 * table has subdivisions for it, the first-level subdivision. Either is absent when the table
 * cannot place the point (open sea; a sliver where the two sources' borders differ).
 * @public
 */
export function placeAt(lat: number, lon: number): { country?: Place; subdivision?: Place } {
  if (!(Math.abs(lat) <= 90 && Math.abs(lon) <= 180)) return {};
  const code = countryCoder.iso1A2Code([lon, lat]);
  const country = code === null ? undefined : findRegion(code);
  if (!country) return {};
  const subdivision = load()
    .subdivisionList.get(country.code)
    ?.find((s) => placeContainsPoint(s, lat, lon));
  return subdivision ? { country, subdivision } : { country };
}

/**
 * The label of a point, as the agent puts it into `geographic_region`: `{region: <ISO 3166-1
 * alpha-2>, state?: <subdivision name>}` (`{region: 'US', state: 'California'}`, `{region: 'DE',
 * state: 'Baden-Württemberg'}`), or `undefined` where the table cannot place it. No city: the
 * table has none.
 * @public
 */
export function labelPoint(lat: number, lon: number): GeographicRegion | undefined {
  const { country, subdivision } = placeAt(lat, lon);
  if (!country) return undefined;
  return subdivision ? { region: country.code, state: subdivision.name } : { region: country.code };
}

/**
 * The codes of the place and every place containing it in the table's hierarchy (subdivision →
 * country → unions the country belongs to): `US-CA` → `US-CA`, `US`; `DE-BY` → `DE-BY`, `DE`, `EU`.
 * @public
 */
export function placeLineage(place: Place): string[] {
  const out = [place.code];
  const country =
    place.kind === 'subdivision' ? place.country! : place.kind === 'country' ? place.code : undefined;
  if (country === undefined) return out;
  if (country !== place.code) out.push(country);
  // Unions the table knows (today the EU); membership as the country-coder data records it.
  for (const p of new Set(load().regions.values())) {
    if (p.kind === 'union' && countryCoder.isIn(country, p.code)) out.push(p.code);
  }
  return out;
}

/**
 * Where the place table's data comes from (for documentation, diagnostics and `geofence doctor`).
 * @public
 */
export const PLACE_DATA_SOURCES = Object.freeze({
  countries: '@rapideditor/country-coder 5.6.1 (ISC; borders derived from OpenStreetMap)',
  subdivisions: 'Natural Earth 1:10m Admin 1 (public domain) for US, DE, FR, MX, CH',
});
