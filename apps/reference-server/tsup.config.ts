import { defineConfig } from 'tsup';

export default defineConfig({
  // The CLI (`bin: geofence`) is its own entry; tsup keeps the shebang of src/cli.ts.
  entry: ['src/index.ts', 'src/cli.ts'],
  format: ['esm'],
  // composite (for tsc -b) makes tsup's dts pass demand every file be listed; it only needs the entry graph.
  dts: { entry: 'src/index.ts', compilerOptions: { composite: false } },
  sourcemap: true,
  clean: true,
  target: 'node20',
});
