#!/usr/bin/env bash
# Provisioning latency per isolation mode and migration fan-out against a serial loop.
# Prints markdown tables. Options: --schemas N (1000) --databases N (20) --samples N (50).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup.sh"
cd "$root"
cargo bench -q -p bulkhead-provisioner --bench provisioning -- "$@"
