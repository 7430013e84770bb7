import { defineConfig } from 'tsup';

export default defineConfig({
  // Two entry points: the root and `./fastify` (the only one that imports Fastify types); shared code is one chunk.
  entry: ['src/index.ts', 'src/fastify.ts'],
  format: ['esm'],
  // composite (for tsc -b) makes tsup's dts pass demand every file be listed; it only needs the entry graph.
  dts: { compilerOptions: { composite: false } },
  sourcemap: true,
  clean: true,
  target: 'node20',
  // Optional/peer dependencies stay external; better-sqlite3 is imported lazily by the SQLite classes only.
  external: ['better-sqlite3', 'fastify', 'express'],
});
