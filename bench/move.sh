#!/usr/bin/env bash
# Moves a 1,000,000-row tenant shared → database while a writer writes through the gateway,
# against a plain COPY of the same rows. Prints a markdown table.
# Options: --rows N (1000000) --others N (200000) --rate writes/s (200).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup.sh"
cd "$root"
cargo bench -q -p bulkhead-mover --bench move -- "$@"
