import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm'],
  // composite (for tsc -b) makes tsup's dts pass demand every file be listed; it only needs the entry graph.
  dts: { compilerOptions: { composite: false } },
  sourcemap: true,
  clean: true,
  target: 'node20',
  // The generated subdivision table (2 MB of JSON text) ships as its own file beside index.js,
  // not inlined: the source map would carry a second copy of it.
  esbuildPlugins: [
    {
      name: 'place-data-beside-bundle',
      setup(build) {
        build.onResolve({ filter: /\/data\/subdivisions\.js$/ }, () => ({
          path: './subdivisions.js',
          external: true,
        }));
      },
    },
  ],
  onSuccess: 'cp src/places/data/subdivisions.js dist/subdivisions.js',
});
