import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type CompiledPolygon,
  circleInside,
  circleOutside,
  compilePolygonList,
  findRegion,
  findState,
  placeOutline,
  pointInside,
} from '../src/index.js';
import { gridForTests, scanOnly } from '../src/places/polygon.js';
import { GRID_INSIDE, GRID_OUTSIDE } from '../src/places/polygon-grid.js';

/** Real outlines with many edges (so they get a grid), plus a ring with a hole. */
function polygonsOf(region: string, state?: string): CompiledPolygon[] {
  let place = findRegion(region);
  if (place && state !== undefined) place = findState(place, state);
  if (!place) throw new Error(`unknown place ${region}/${state}`);
  return compilePolygonList(placeOutline(place));
}

/** A 200-vertex circle-ish outer ring around (10, 50) with a 100-vertex hole. */
function ringWithHole(): CompiledPolygon[] {
  const ring = (r: number, n: number, dir: 1 | -1) => {
    const out: number[][] = [];
    for (let i = 0; i <= n; i++) {
      const t = (dir * 2 * Math.PI * (i % n)) / n;
      // A wobbly radius gives concave stretches.
      const rr = r * (1 + 0.2 * Math.sin(7 * t));
      out.push([10 + rr * Math.cos(t), 50 + rr * Math.sin(t)]);
    }
    return out;
  };
  return compilePolygonList([[ring(1, 200, 1), ring(0.3, 100, -1)]]);
}

const cases: Array<[string, CompiledPolygon[]]> = [
  ['California', polygonsOf('US', 'California')],
  ['Germany', polygonsOf('DE')],
  ['France', polygonsOf('FR')],
  ['Italy (holes: San Marino, Vatican)', polygonsOf('IT')],
  ['South Africa (hole: Lesotho)', polygonsOf('ZA')],
  ['synthetic ring with a hole', ringWithHole()],
];

/** Offsets on every scale from 1e-9° (on the border) to 1° (well inside or outside). */
const offset = fc
  .tuple(fc.double({ min: -9, max: 0, noNaN: true }), fc.boolean())
  .map(([e, neg]) => (neg ? -1 : 1) * 10 ** e);
const accuracy = fc.oneof(
  fc.constant(0),
  fc.double({ min: -2, max: 5.5, noNaN: true }).map((e) => 10 ** e),
  fc.constantFrom(-1, Number.NaN, 1e-12),
);

describe('polygon grid: indexed answers equal the exact edge scans', () => {
  for (const [name, polys] of cases) {
    it(`${name}: near vertices and edges`, () => {
      // Each polygon answers through its grid (built on first use) and through the scans alone.
      const big = polys.filter((p) => p.rings.reduce((n, r) => n + r.length, 0) >= 64);
      expect(big.length).toBeGreaterThan(0);
      const vertex = fc.constantFrom(...big).chain((p) =>
        fc.tuple(
          fc.constant(p),
          fc
            .integer({ min: 0, max: p.rings.length - 1 })
            .chain((ri) =>
              fc.integer({ min: 0, max: p.rings[ri]!.length - 1 }).map((vi) => p.rings[ri]![vi]!),
            ),
        ),
      );
      fc.assert(
        fc.property(
          vertex,
          offset,
          offset,
          fc.double({ min: 0, max: 1, noNaN: true }),
          accuracy,
          ([poly, v], dx, dy, along, acc) => {
            // Near a vertex, or near the middle of the edge after it.
            const ring = poly.rings.find((r) => r.includes(v))!;
            const w = ring[(ring.indexOf(v) + 1) % ring.length]!;
            const lon = v[0]! + along * (w[0]! - v[0]!) + dx;
            const lat = v[1]! + along * (w[1]! - v[1]!) + dy;
            expect(pointInside(poly, lon, lat)).toBe(scanOnly.pointInside(poly, lon, lat));
            expect(circleInside(poly, lon, lat, acc)).toBe(scanOnly.circleInside(poly, lon, lat, acc));
            expect(circleOutside(poly, lon, lat, acc)).toBe(scanOnly.circleOutside(poly, lon, lat, acc));
          },
        ),
        { numRuns: 3000 },
      );
    });

    it(`${name}: anywhere in and around the bbox`, () => {
      const poly = polys.reduce((a, b) => (a.rings[0]!.length >= b.rings[0]!.length ? a : b));
      const [minX, minY, maxX, maxY] = poly.bbox;
      const w = maxX - minX;
      const h = maxY - minY;
      fc.assert(
        fc.property(
          fc.double({ min: minX - 0.1 * w, max: maxX + 0.1 * w, noNaN: true }),
          fc.double({ min: minY - 0.1 * h, max: maxY + 0.1 * h, noNaN: true }),
          accuracy,
          (lon, lat, acc) => {
            expect(pointInside(poly, lon, lat)).toBe(scanOnly.pointInside(poly, lon, lat));
            expect(circleInside(poly, lon, lat, acc)).toBe(scanOnly.circleInside(poly, lon, lat, acc));
            expect(circleOutside(poly, lon, lat, acc)).toBe(scanOnly.circleOutside(poly, lon, lat, acc));
          },
        ),
        { numRuns: 3000 },
      );
    });
  }

  it('the grid actually answers deep inside and far outside (else this test proves nothing)', () => {
    const [ca] = polygonsOf('US', 'California').sort((a, b) => b.rings[0]!.length - a.rings[0]!.length);
    // Santa Clara, 25 m: certainly inside; Reno (Nevada), 25 m: certainly outside.
    expect(circleInside(ca!, -121.97, 37.35, 25)).toBe(true);
    expect(circleOutside(ca!, -119.81, 39.53, 25)).toBe(true);
    expect(circleInside(ca!, -119.81, 39.53, 25)).toBe(false);
    const grid = gridForTests(ca!);
    expect(grid).toBeDefined();
    const d = 25 / 110_574;
    expect(grid!.classify(-121.97 - d, 37.35 - d, -121.97 + d, 37.35 + d)).toBe(GRID_INSIDE);
    expect(grid!.classify(-119.81 - d, 39.53 - d, -119.81 + d, 39.53 + d)).toBe(GRID_OUTSIDE);
  });
});
