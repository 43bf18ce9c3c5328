#!/usr/bin/env bash
# Backup and restore of a 1,000,000-row tenant against a plain binary COPY TO/FROM of the same
# rows. Prints a markdown table. Options: --rows N (1000000).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup.sh"
cd "$root"
cargo bench -q -p bulkhead-backup --bench backup -- "$@"
