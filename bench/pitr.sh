#!/usr/bin/env bash
# Rewind of a 1,000,000-row tenant (shared, and in its own database) against a pgBackRest
# restore of the whole cluster to the same instant. Prints a markdown table.
# Options: --rows N (1000000), --others N (rows of each of the 10 neighbours, default N/10).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup.sh"
cd "$root"
cargo bench -q -p bulkhead-pitr --bench rewind -- "$@"
