#!/usr/bin/env node
/**
 * Builds the collector console's browser assets into dist/console (or the directory given as the
 * first argument): console.js (the page script with Leaflet, one IIFE bundle), console.css (with
 * Leaflet's stylesheet and images inlined), and world.json (country outlines from world-atlas,
 * Natural Earth 1:110m, converted from TopoJSON to GeoJSON). No asset is fetched at run time from
 * anywhere but the collector itself.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { feature } from 'topojson-client';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const out = resolve(process.argv[2] ?? join(root, 'dist', 'console'));
const require = createRequire(import.meta.url);
mkdirSync(out, { recursive: true });

await build({
  entryPoints: [join(root, 'console-ui', 'main.ts')],
  outfile: join(out, 'console.js'),
  bundle: true,
  format: 'iife',
  platform: 'browser',
  target: 'es2022',
  minify: true,
  sourcemap: true,
  legalComments: 'linked',
  logLevel: 'warning',
});
await build({
  entryPoints: [join(root, 'console-ui', 'console.css')],
  outfile: join(out, 'console.css'),
  bundle: true,
  minify: true,
  loader: { '.png': 'dataurl', '.svg': 'dataurl' },
  logLevel: 'warning',
});

/**
 * Rings that cross the antimeridian (Russia, Fiji, Antarctica) jump from +180 to -180; Leaflet would
 * draw that jump as a line across the whole map. Unwrapped, the ring continues past ±180 instead.
 */
function unwrap(ring) {
  let shift = 0;
  return ring.map(([lon, lat], i) => {
    if (i > 0) {
      const prev = ring[i - 1][0];
      if (lon - prev > 180) shift -= 360;
      else if (prev - lon > 180) shift += 360;
    }
    return [lon + shift, lat];
  });
}

const topo = JSON.parse(readFileSync(require.resolve('world-atlas/countries-110m.json'), 'utf8'));
const world = feature(topo, topo.objects.countries);
for (const f of world.features) {
  const g = f.geometry;
  if (g?.type === 'Polygon') g.coordinates = g.coordinates.map(unwrap);
  else if (g?.type === 'MultiPolygon') g.coordinates = g.coordinates.map((p) => p.map(unwrap));
}
writeFileSync(join(out, 'world.json'), JSON.stringify(world));
