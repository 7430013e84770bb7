#!/usr/bin/env node
// Builds the addon with node-gyp. When this Node installation ships its own headers
// (distro packages put them in /usr/include/node), point node-gyp at them so the build
// works offline instead of downloading a header tarball from nodejs.org.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

// `--if-stale` (used by `npm run build`): skip node-gyp when the compiled addon is newer
// than binding.gyp and every file under native/, so a pulled C++ change is never tested
// against an old binary and an unchanged tree costs nothing.
if (process.argv.includes('--if-stale')) {
  const binary = join('build', 'Release', 'geofence_tpm.node');
  const sources = ['binding.gyp', ...readdirSync('native').map((f) => join('native', f))];
  if (existsSync(binary) && sources.every((f) => statSync(f).mtimeMs <= statSync(binary).mtimeMs)) {
    process.exit(0);
  }
}

const args = ['rebuild'];
const prefix = dirname(dirname(process.execPath));
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h'))) {
  args.push(`--nodedir=${prefix}`);
}
if (process.env.GEOFENCE_TPM_DEBUG === '1') args.push('--debug');

let gyp;
try {
  gyp = createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
} catch {
  // npm bundles node-gyp next to itself.
  const npmGyp = join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  gyp = existsSync(npmGyp) ? npmGyp : undefined;
}
const result = gyp
  ? spawnSync(process.execPath, [gyp, ...args], { stdio: 'inherit' })
  : spawnSync('node-gyp', args, { stdio: 'inherit', shell: process.platform === 'win32' });
process.exit(result.status ?? 1);
