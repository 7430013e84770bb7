/**
 * The published packages as a user gets them (issue 10 item 7): `npm pack` of every package under
 * packages/, installed into an empty project outside the repo from those tarballs plus the registry.
 *
 * Needs the dist/ of every package (`npm run build`) and the npm registry (or a warm npm cache: the install
 * runs with `--prefer-offline`). The install uses `--ignore-scripts`: the install script of
 * `@geofence/native-tpm` (node-gyp build of the addon against libtss2) and of `better-sqlite3` (a prebuilt
 * download or a build of SQLite) would take minutes; nothing here opens a TPM or a SQLite file, and both
 * addons are loaded lazily, so importing the packages does not need them. What the native-tpm install script
 * does from a tarball is in that package's README.
 */
import { execFile } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const PACKAGES = ['http-sig', 'protocol', 'tpm-wire', 'native-tpm', 'sdk-verifier', 'sdk-agent'];

interface Manifest {
  name: string;
  version: string;
  private?: boolean;
  files?: string[];
  exports?: Record<string, unknown>;
  peerDependencies?: Record<string, string>;
  publishConfig?: { access?: string };
  repository?: unknown;
  homepage?: string;
  bugs?: unknown;
  keywords?: string[];
}
const manifest = (dir: string): Manifest =>
  JSON.parse(readFileSync(join(ROOT, 'packages', dir, 'package.json'), 'utf8')) as Manifest;

let work: string;
let app: string;
const tarballs = new Map<string, string>();

async function sh(cmd: string, args: string[], cwd: string, timeout = 240_000) {
  try {
    const r = await run(cmd, args, { cwd, timeout, maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number | string; stdout?: string; stderr?: string };
    return { code: err.code, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}
const node = (args: string[]) => sh(process.execPath, args, app, 60_000);

describe('package manifests', () => {
  it.each(PACKAGES)('%s: exports types + default, no source condition, LICENSE, metadata', (dir) => {
    const m = manifest(dir);
    expect(m.private).toBeUndefined();
    for (const [subpath, target] of Object.entries(m.exports ?? {})) {
      if (subpath === './package.json') continue;
      expect(Object.keys(target as object), subpath).toEqual(['types', 'default']);
    }
    expect(JSON.stringify(m.exports)).not.toContain('"source"');
    expect(m.files).toContain('LICENSE');
    expect(readFileSync(join(ROOT, 'packages', dir, 'LICENSE'), 'utf8')).toBe(
      readFileSync(join(ROOT, 'LICENSE'), 'utf8'),
    );
    expect(readFileSync(join(ROOT, 'LICENSE'), 'utf8')).toContain(
      'Apache License\n                           Version 2.0',
    );
    expect(m.publishConfig?.access).toBe('public');
    expect(m.repository).toBeTruthy();
    expect(m.homepage).toMatch(/^https:\/\//);
    expect(m.bugs).toBeTruthy();
    expect(m.keywords?.length).toBeGreaterThan(0);
  });

  it('the verifier accepts Express 4 and 5 as peers', () => {
    expect(manifest('sdk-verifier').peerDependencies?.express).toBe('^4.18 || ^5');
  });
});

describe('installed from the tarballs into an empty project', () => {
  // `npm pack` + one `npm install` of everything (about a minute with a warm npm cache on a quiet machine).
  beforeAll(async () => {
    for (const dir of PACKAGES) {
      if (!existsSync(join(ROOT, 'packages', dir, 'dist', 'index.js'))) {
        throw new Error(`packages/${dir}/dist is missing: run \`npm run build\` first`);
      }
    }
    work = mkdtempSync(join(tmpdir(), 'geofence-packaging-'));
    const packDir = join(work, 'tarballs');
    mkdirSync(packDir);
    const packed = await sh(
      'npm',
      ['pack', '--json', '--pack-destination', packDir, ...PACKAGES.flatMap((d) => ['-w', `packages/${d}`])],
      ROOT,
    );
    expect(packed.code, packed.stderr).toBe(0);
    for (const entry of JSON.parse(packed.stdout) as { name: string; filename: string }[]) {
      tarballs.set(entry.name, join(packDir, entry.filename));
    }

    // An empty CommonJS project (no "type"): Express 4 with its own types, every @geofence package from its
    // tarball. `overrides` make the packages' dependencies on each other resolve to the tarballs too.
    app = join(work, 'app');
    const spec = Object.fromEntries([...tarballs].map(([name, file]) => [name, `file:${file}`]));
    mkdirSync(app);
    writeFileSync(
      join(app, 'package.json'),
      JSON.stringify(
        {
          name: 'express4-app',
          private: true,
          version: '1.0.0',
          dependencies: {
            ...spec,
            express: '^4.18.0',
            '@types/express': '^4.17.21',
            '@types/node': '^20.19.0',
          },
          overrides: spec,
        },
        null,
        2,
      ),
    );
    // No --legacy-peer-deps / --force: the verifier's peer range must accept Express 4.
    const installed = await sh(
      'npm',
      ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts'],
      app,
      300_000,
    );
    expect(installed.code, `${installed.stdout}\n${installed.stderr}`).toBe(0);
  }, 360_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('the installed agent pulls in neither the verifier nor its server-side dependencies', async () => {
    const ls = await sh('npm', ['ls', '--all', '--json'], app);
    type Node = { dependencies?: Record<string, Node> };
    const names = new Set<string>();
    const walk = (n: Node | undefined) => {
      for (const [name, child] of Object.entries(n?.dependencies ?? {})) {
        names.add(name);
        walk(child);
      }
    };
    walk((JSON.parse(ls.stdout) as Node).dependencies?.['@geofence/agent']);
    expect(names.has('@geofence/protocol')).toBe(true);
    const forbidden = [...names].filter(
      (n) =>
        n === '@geofence/verifier' ||
        n === 'ioredis' ||
        n === 'fastify-plugin' ||
        n === 'jose' ||
        n.startsWith('@turf/'),
    );
    expect(forbidden).toEqual([]);
  });

  it('every tarball carries LICENSE, README.md and dist, and no sources or tests', async () => {
    for (const [name, file] of tarballs) {
      const list = await sh('tar', ['tzf', file], work);
      const files = list.stdout.split('\n').filter(Boolean);
      expect(files, name).toContain('package/LICENSE');
      expect(files, name).toContain('package/README.md');
      expect(files, name).toContain('package/dist/index.js');
      expect(files, name).toContain('package/dist/index.d.ts');
      expect(
        files.filter((f) => f.startsWith('package/src/') || f.startsWith('package/test/')),
        name,
      ).toEqual([]);
    }
  });

  it('installed Express 4 with no peer dependency problem', async () => {
    const ls = await sh('npm', ['ls', '--json', 'express', '@geofence/verifier'], app);
    expect(ls.code, ls.stderr).toBe(0);
    const tree = JSON.parse(ls.stdout) as { dependencies: Record<string, { version: string }> };
    expect(tree.dependencies.express?.version).toMatch(/^4\./);
    expect(existsSync(join(app, 'node_modules', 'fastify'))).toBe(false);
  });

  it('require() and import() of every package work', async () => {
    for (const name of tarballs.keys()) {
      const cjs = await node([
        '-e',
        `const m = require(${JSON.stringify(name)}); console.log(Object.keys(m).length)`,
      ]);
      expect(cjs.code, `${name}: ${cjs.stderr}`).toBe(0);
      expect(Number(cjs.stdout.trim()), name).toBeGreaterThan(0);
      const esm = await node([
        '--input-type=module',
        '-e',
        `const m = await import(${JSON.stringify(name)}); console.log(Object.keys(m).length)`,
      ]);
      expect(esm.code, `${name}: ${esm.stderr}`).toBe(0);
      expect(esm.stdout.trim(), name).toBe(cjs.stdout.trim());
    }
    const v = await node([
      '-e',
      "const v = require('@geofence/verifier'); console.log(typeof v.geofence.express.collector, 'fastify' in v.geofence, 'geofenceFastify' in v)",
    ]);
    expect(v.stdout.trim(), v.stderr).toBe('function false false');
    // The subpath loads without Fastify installed (fastify-plugin is a dependency; Fastify only a peer).
    const f = await node(['-e', "console.log(typeof require('@geofence/verifier/fastify').geofenceFastify)"]);
    expect(f.stdout.trim(), f.stderr).toBe('function');
  });

  it('an Express-only strict TypeScript project compiles (no skipLibCheck, no Fastify)', async () => {
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          module: 'nodenext',
          moduleResolution: 'nodenext',
          target: 'es2022',
          types: ['node'],
          noEmit: true,
        },
        files: ['collector.mts', 'collector.cts'],
      }),
    );
    const body = `
const registry = await JsonFileRegistry.open({ path: './agents.json' });
const nonces = new MemoryNonceStore();
const app = express();
app.get('/nonce', geofence.express.nonce({ registry, nonces }));
app.post('/metrics', geofence.express.collector({ registry, nonces }));
app.use(geofence.express.errorHandler());
const problem: Problem | undefined = undefined;
void problem;
app.listen(0);
`;
    writeFileSync(
      join(app, 'collector.mts'),
      `import express from 'express';
import { geofence, JsonFileRegistry, MemoryNonceStore, type Problem } from '@geofence/verifier';
${body}`,
    );
    writeFileSync(
      join(app, 'collector.cts'),
      `import express = require('express');
import { geofence, JsonFileRegistry, MemoryNonceStore, type Problem } from '@geofence/verifier';
async function main(): Promise<void> {${body}}
void main();
`,
    );
    const tsc = await sh(process.execPath, [TSC, '-p', 'tsconfig.json'], app, 120_000);
    expect(tsc.code, tsc.stdout + tsc.stderr).toBe(0);
  });

  it('the quickstart shipped with the agent runs from the project (imports resolve, CA path is an option)', async () => {
    const quickstart = join(app, 'node_modules', '@geofence', 'agent', 'examples', 'quickstart.mjs');
    expect(readdirSync(join(app, 'node_modules', '@geofence', 'agent', 'examples'))).toEqual([
      'quickstart.mjs',
    ]);
    const usage = await node([quickstart]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('usage: node quickstart.mjs --ca <ca.pem>');
    // The README shows the same program inline.
    const readme = readFileSync(join(ROOT, 'packages', 'sdk-agent', 'README.md'), 'utf8');
    const program = readFileSync(quickstart, 'utf8');
    expect(readme).toContain(program.slice(program.indexOf('import { readFileSync }')).trim());
  });
});
