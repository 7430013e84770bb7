import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm'],
  // The d.ts build of a composite project with several source files fails with TS6307 unless composite is off.
  // The bundled d.ts drops the entry's leading comment; the banner puts the @packageDocumentation back on top.
  dts: {
    compilerOptions: { composite: false },
    banner: `/**
 * RFC 9421 HTTP Message Signatures profile and RFC 9530 Content-Digest, with async (TPM-backed) signers.
 *
 * @packageDocumentation
 */`,
  },
  sourcemap: true,
  clean: true,
  target: 'node20',
});
