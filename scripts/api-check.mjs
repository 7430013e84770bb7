#!/usr/bin/env node
// Runs api-extractor for every published package. Without --local it fails
// when a checked-in report in api-reports/ differs from the current API.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Extractor, ExtractorConfig } from '@microsoft/api-extractor';

const local = process.argv.includes('--local');
let failed = false;
for (const dir of readdirSync('packages')) {
  const configPath = join('packages', dir, 'api-extractor.json');
  if (!existsSync(configPath)) continue;
  const pkg = JSON.parse(readFileSync(join('packages', dir, 'package.json'), 'utf8'));
  if (pkg.private) continue;
  const config = ExtractorConfig.loadFileAndPrepare(configPath);
  const result = Extractor.invoke(config, { localBuild: local, showVerboseMessages: false });
  if (!result.succeeded) {
    failed = true;
    console.error(
      `api: ${pkg.name}: ${result.apiReportChanged ? 'public API changed; run `npm run api:update` and commit api-reports/' : `${result.errorCount} error(s)`}`,
    );
  } else {
    console.log(`api: ${pkg.name}: ok${result.apiReportChanged ? ' (report updated)' : ''}`);
  }
}
process.exit(failed ? 1 : 0);
