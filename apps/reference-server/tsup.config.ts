import { defineConfig } from 'tsup';

export default defineConfig({
  // The CLI (`bin: geofence`) is its own entry; tsup keeps the shebang of src/cli.ts.
  // The record writer thread (records-writer.ts) is loaded by file name, so it is an entry too.
  entry: ['src/index.ts', 'src/cli.ts', 'src/records-writer.ts'],
  format: ['esm'],
  // Private app: no .d.ts bundle (it would type-check the whole monorepo again and add ~50 s to
  // `npm run demo`); types come from the sources (`types` in package.json, tsconfig `paths`), checked by `tsc -b`.
  dts: false,
  sourcemap: true,
  clean: true,
  target: 'node20',
});
