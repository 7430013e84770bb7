#!/usr/bin/env node
// Install-time preflight: fail early with an actionable message when the tpm2-tss
// development files (headers + pkg-config metadata) are missing, instead of a wall of
// compiler errors from node-gyp.
import { execFileSync } from 'node:child_process';

const modules = ['tss2-esys', 'tss2-mu', 'tss2-rc', 'tss2-tctildr', 'tss2-sys'];

function fail(detail) {
  process.stderr.write(
    `\n@geofence/native-tpm: tpm2-tss development files not found (${detail}).\n` +
      '  Debian/Ubuntu:  sudo apt-get install libtss2-dev pkg-config\n' +
      '  Fedora/RHEL:    sudo dnf install tpm2-tss-devel pkgconf-pkg-config\n' +
      '  (swtpm and swtpm-tools are also needed to run the tests: apt-get install swtpm swtpm-tools)\n\n',
  );
  process.exit(1);
}

try {
  execFileSync('pkg-config', ['--version'], { stdio: 'ignore' });
} catch {
  fail('pkg-config is not installed');
}
try {
  execFileSync('pkg-config', ['--exists', '--print-errors', ...modules], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
} catch (err) {
  const stderr = err && typeof err === 'object' && 'stderr' in err ? String(err.stderr).trim() : '';
  fail(`pkg-config cannot find ${modules.join(', ')}${stderr ? `: ${stderr}` : ''}`);
}
