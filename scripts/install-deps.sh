#!/usr/bin/env bash
# Installs what inferplane needs on a fresh Debian/Ubuntu machine with Node.js 20:
# the npm packages (from package-lock.json) and, with --system, the Debian packages the tests and
# benchmarks use (redis-server for the shared rate-limit store; nginx for the gateway benchmark).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--system" ]; then
  need=()
  command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
  command -v nginx >/dev/null 2>&1 || need+=(nginx-light)
  if [ ${#need[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    # The packages' own services are not used: tests start their own servers on random ports.
    $SUDO systemctl disable --now redis-server nginx >/dev/null 2>&1 || true
    pkill -x redis-server >/dev/null 2>&1 || true
  fi
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
