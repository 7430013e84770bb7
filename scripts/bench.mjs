#!/usr/bin/env node
import { spawnSync } from 'node:child_process';
// Runs every benchmark under bench/ (or the ones named on the command line).
// Each prints `name: value unit` lines; `--json DIR` makes each write JSON too.
import { readdirSync } from 'node:fs';

const wanted = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const files = readdirSync('bench')
  .filter((f) => /\.bench\.(ts|mjs)$/.test(f))
  .filter((f) => wanted.length === 0 || wanted.some((w) => f.startsWith(w)));
let failed = 0;
for (const file of files) {
  console.log(`# bench/${file}`);
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', `bench/${file}`, ...process.argv.slice(2).filter((a) => a.startsWith('--'))],
    { stdio: 'inherit' },
  );
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
