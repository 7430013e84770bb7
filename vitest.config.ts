import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (dir: string) => fileURLToPath(new URL(`./${dir}/src/index.ts`, import.meta.url));

/**
 * One vitest run for the whole monorepo. Workspace packages resolve to their
 * TypeScript sources, so tests never depend on a stale build. Test files run
 * in parallel forks; each file starts its own swtpm/Redis/gpsd at most once.
 */
export default defineConfig({
  resolve: {
    alias: [
      { find: /^@geofence\/http-sig$/, replacement: src('packages/http-sig') },
      { find: /^@geofence\/protocol$/, replacement: src('packages/protocol') },
      { find: /^@geofence\/tpm-wire$/, replacement: src('packages/tpm-wire') },
      { find: /^@geofence\/native-tpm$/, replacement: src('packages/native-tpm') },
      { find: /^@geofence\/verifier$/, replacement: src('packages/sdk-verifier') },
      {
        find: /^@geofence\/verifier\/fastify$/,
        replacement: fileURLToPath(new URL('./packages/sdk-verifier/src/fastify.ts', import.meta.url)),
      },
      { find: /^@geofence\/agent$/, replacement: src('packages/sdk-agent') },
    ],
  },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'apps/*/test/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
