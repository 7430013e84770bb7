#!/usr/bin/env node
// Runs api-extractor for every entry point of every published package: one config per entry point,
// `api-extractor.json` (the root) and `api-extractor.<subpath>.json` (e.g. `@geofence/verifier/fastify`).
// Without --local it fails when a checked-in report in api-reports/ differs from the current API.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Extractor, ExtractorConfig } from '@microsoft/api-extractor';

const local = process.argv.includes('--local');
let failed = false;
for (const dir of readdirSync('packages')) {
  if (!existsSync(join('packages', dir, 'package.json'))) continue;
  const pkg = JSON.parse(readFileSync(join('packages', dir, 'package.json'), 'utf8'));
  if (pkg.private) continue;
  const configs = readdirSync(join('packages', dir))
    .filter((f) => /^api-extractor(\.[\w-]+)?\.json$/.test(f))
    .sort();
  for (const file of configs) {
    const subpath = file.match(/^api-extractor\.([\w-]+)\.json$/)?.[1];
    const name = subpath ? `${pkg.name}/${subpath}` : pkg.name;
    if (subpath && !pkg.exports?.[`./${subpath}`]) {
      failed = true;
      console.error(`api: ${name}: ${file} has no matching "./${subpath}" in the package's exports`);
      continue;
    }
    const config = ExtractorConfig.loadFileAndPrepare(join('packages', dir, file));
    const result = Extractor.invoke(config, { localBuild: local, showVerboseMessages: false });
    if (!result.succeeded) {
      failed = true;
      console.error(
        `api: ${name}: ${result.apiReportChanged ? 'public API changed; run `npm run api:update` and commit api-reports/' : `${result.errorCount} error(s)`}`,
      );
    } else {
      console.log(`api: ${name}: ok${result.apiReportChanged ? ' (report updated)' : ''}`);
    }
  }
}
process.exit(failed ? 1 : 0);
