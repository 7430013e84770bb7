#!/usr/bin/env node
// Committed launcher for the `geofence` CLI: npm links bins at install time, before
// `npm run build` has produced dist/, so the bin must be a file that exists in the clone.
import('../dist/cli.js').catch((err) => {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND') {
    process.stderr.write('geofence: not built yet — run `npm run build` at the repository root first\n');
    process.exit(1);
  }
  throw err;
});
