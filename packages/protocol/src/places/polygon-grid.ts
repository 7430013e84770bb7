/**
 * A uniform grid over a polygon's bounding box that answers "is this small rectangle certainly
 * inside / certainly outside" without looking at edges, so the containment tests of polygon.ts
 * skip their O(edges) scans for accuracy circles far from any border (a Natural Earth state
 * outline has thousands of edges; a reading deep inside it touches none).
 *
 * Why the answers equal the exact scans (the property test in test/polygon-grid.test.ts checks it):
 * - A cell is *edge-free* when no edge's bounding box, widened by {@link EPS} degrees, overlaps it.
 *   Cells are found with one monotone mapping `floor((x - min) / size)` (IEEE subtraction and
 *   division by a positive constant never reverse an order), so a point maps to an edge-free cell
 *   only if it lies outside every widened edge box: more than EPS from every edge.
 * - The ray-crossing test of `inRings` is exact for such points: crossings depend on comparisons
 *   of `y` only (exact) and on `x < xcross`, whose rounding error (≈1e-14°) is far below EPS. So
 *   its answer is the true even-odd parity, which is the same over a cell (a connected set
 *   touching no edge). The parity of each edge-free cell is `inRings` at one point of it, computed
 *   for a whole row at once by a scanline with the very same crossing expression.
 * - A circle whose query rectangle touches only edge-free cells is more than EPS (degrees) from every
 *   edge, so every edge is farther than the accuracy radius from its centre.
 */

type Ring = ReadonlyArray<readonly number[]>;

/** Margin in degrees around each edge (≈1 cm): far above rounding, far below a cell. */
const EPS = 1e-7;
/** Below this many edges the scans are cheap enough; no grid. */
const MIN_EDGES = 64;
/** Upper bound of cells per side. */
const MAX_SIDE = 256;
/** Cells marked per cell of the grid, at most, before the grid is given up as too costly to build. */
const MAX_MARK_WORK = 32;

/** Cell states. */
const EDGE = 0;
const OUTSIDE = 1;
const INSIDE = 2;

/** {@link PolygonGrid.classify}: some cell has an edge or lies outside the grid (scan the edges). */
export const GRID_UNKNOWN = 0;
/** {@link PolygonGrid.classify}: every cell is edge-free and outside the polygon. */
export const GRID_OUTSIDE = 1;
/** {@link PolygonGrid.classify}: every cell is edge-free and inside the polygon. */
export const GRID_INSIDE = 2;
/** What {@link PolygonGrid.classify} knows about a rectangle. */
export type GridAnswer = typeof GRID_UNKNOWN | typeof GRID_OUTSIDE | typeof GRID_INSIDE;

/** The grid of one polygon (outer ring's bounding box, every ring's edges). */
export interface PolygonGrid {
  /** Whether the rectangle `[x0, x1] × [y0, y1]` (degrees, `x0 ≤ x1`, `y0 ≤ y1`) is certainly in or out. */
  classify(x0: number, y0: number, x1: number, y1: number): GridAnswer;
}

/** `i` clamped to `0..n-1` (monotone, so the cell mapping stays monotone). */
function clamp(i: number, n: number): number {
  return i < 0 ? 0 : i >= n ? n - 1 : i;
}

/**
 * Builds the grid for `rings` (outer ring first) within `bbox`, or `undefined` when the polygon is
 * small or degenerate (the exact scans then decide alone).
 */
export function buildPolygonGrid(
  rings: readonly Ring[],
  bbox: readonly [number, number, number, number],
): PolygonGrid | undefined {
  const [minX, minY, maxX, maxY] = bbox;
  let edges = 0;
  for (const r of rings) {
    edges += r.length;
    for (const p of r) if (!Number.isFinite(p[0]) || !Number.isFinite(p[1])) return undefined;
  }
  if (edges < MIN_EDGES || !(maxX > minX && maxY > minY)) return undefined;
  if (!Number.isFinite(maxX - minX) || !Number.isFinite(maxY - minY)) return undefined;
  // About four cells per edge, shaped like the bbox.
  const cells = Math.min(MAX_SIDE * MAX_SIDE, 4 * edges);
  const aspect = (maxX - minX) / (maxY - minY);
  const nx = Math.max(1, Math.min(MAX_SIDE, Math.round(Math.sqrt(cells * aspect))));
  const ny = Math.max(1, Math.min(MAX_SIDE, Math.round(cells / nx)));
  const sx = (maxX - minX) / nx;
  const sy = (maxY - minY) / ny;
  const col = (x: number) => Math.floor((x - minX) / sx);
  const row = (y: number) => Math.floor((y - minY) / sy);
  const state = new Uint8Array(nx * ny).fill(OUTSIDE);

  // Mark every cell a widened edge box overlaps (including the closing edge, as inRings has it).
  // Clamped at both ends: an edge beyond the bbox (a stray hole) marks the border cells.
  const boxes = new Int32Array(4 * edges);
  let work = 0;
  let e = 0;
  for (const r of rings) {
    for (let i = 0, j = r.length - 1; i < r.length; j = i++, e += 4) {
      const xi = r[i]![0]!;
      const yi = r[i]![1]!;
      const xj = r[j]![0]!;
      const yj = r[j]![1]!;
      boxes[e] = clamp(col(Math.min(xi, xj) - EPS), nx);
      boxes[e + 1] = clamp(col(Math.max(xi, xj) + EPS), nx);
      boxes[e + 2] = clamp(row(Math.min(yi, yj) - EPS), ny);
      boxes[e + 3] = clamp(row(Math.max(yi, yj) + EPS), ny);
      work += (boxes[e + 1]! - boxes[e]! + 1) * (boxes[e + 3]! - boxes[e + 2]! + 1);
    }
  }
  // Many long diagonal edges (a spiky hand-drawn fence) would mark most cells at great cost: no grid.
  if (work > MAX_MARK_WORK * nx * ny) return undefined;
  for (let b = 0; b < boxes.length; b += 4) {
    for (let y = boxes[b + 2]!; y <= boxes[b + 3]!; y++) {
      for (let x = boxes[b]!; x <= boxes[b + 1]!; x++) state[y * nx + x] = EDGE;
    }
  }

  // Parity of edge-free cells: inRings at the cell centre, one row at a time.
  const xs: number[] = [];
  for (let cy = 0; cy < ny; cy++) {
    const y = minY + (cy + 0.5) * sy;
    if (row(y) !== cy) {
      for (let cx = 0; cx < nx; cx++) state[cy * nx + cx] = EDGE; // cannot happen; stay exact if it does
      continue;
    }
    xs.length = 0;
    for (const r of rings) {
      for (let i = 0, j = r.length - 1; i < r.length; j = i++) {
        const xi = r[i]![0]!;
        const yi = r[i]![1]!;
        const xj = r[j]![0]!;
        const yj = r[j]![1]!;
        // The crossing expression of inRings, verbatim.
        if (yi > y !== yj > y) xs.push(((xj - xi) * (y - yi)) / (yj - yi) + xi);
      }
    }
    xs.sort((a, b) => a - b);
    // Crossings with x < xcross, i.e. those right of the centre: count from the right.
    let k = 0; // crossings ≤ x
    for (let cx = 0; cx < nx; cx++) {
      const at = cy * nx + cx;
      if (state[at] === EDGE) continue;
      const x = minX + (cx + 0.5) * sx;
      if (col(x) !== cx) {
        state[at] = EDGE;
        continue;
      }
      while (k < xs.length && xs[k]! <= x) k++;
      state[at] = (xs.length - k) % 2 === 1 ? INSIDE : OUTSIDE;
    }
  }

  return {
    classify(x0, y0, x1, y1) {
      // NaN fails these too.
      if (!(x0 >= minX && x1 <= maxX && y0 >= minY && y1 <= maxY)) return GRID_UNKNOWN;
      const c0 = clamp(col(x0), nx);
      const c1 = clamp(col(x1), nx);
      const r0 = clamp(row(y0), ny);
      const r1 = clamp(row(y1), ny);
      const first = state[r0 * nx + c0]!;
      if (first === EDGE) return GRID_UNKNOWN;
      for (let y = r0; y <= r1; y++) {
        for (let x = c0; x <= c1; x++) if (state[y * nx + x] !== first) return GRID_UNKNOWN;
      }
      return first === INSIDE ? GRID_INSIDE : GRID_OUTSIDE;
    },
  };
}
