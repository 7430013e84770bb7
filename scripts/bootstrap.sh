#!/usr/bin/env bash
# Idempotent bootstrap: system packages (Debian/apt) and npm dependencies.
# Run by `npm test` (pretest) and `npm run demo`; safe to run any number of times.
set -euo pipefail
cd "$(dirname "$0")/.."

# systemd: systemd-analyze, for the verification of deploy/systemd/*.service (deploy.test.ts).
# postgresql: throwaway clusters for the fleet-mode tests (initdb + pg_ctl); chromium: the console browser test;
# zsh: the zsh completion script is loaded in a real zsh (cli-completion.test.ts).
APT_PACKAGES=(libtss2-dev swtpm swtpm-tools tpm2-tools redis-server gpsd gpsd-clients systemd postgresql chromium zsh)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap: missing system packages: ${missing[*]}" >&2
    echo "bootstrap: run as root:  sudo sh -c '$cmd'" >&2
    exit 1
  fi
  echo "bootstrap: installing system packages: ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  # Debian starts these daemons on install where an init system exists; tests start their own.
  for svc in redis-server gpsd gpsd.socket postgresql; do
    (command -v systemctl >/dev/null && systemctl disable --now "$svc" >/dev/null 2>&1) || true
  done
fi

# npm ci when node_modules is missing or older than the lock file.
stamp=node_modules/.package-lock.json
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
  echo "bootstrap: npm ci" >&2
  npm ci --no-audit --no-fund >&2
fi
