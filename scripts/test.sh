#!/usr/bin/env bash
# Installs what is missing and runs the whole test suite against real PostgreSQL servers that
# the tests start and stop themselves (nothing is left running afterwards).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup.sh"
cd "$root"
cargo test --workspace "$@"
