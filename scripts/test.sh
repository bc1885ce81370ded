#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs, type-checks, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --system
npm test
