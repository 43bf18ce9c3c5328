#!/usr/bin/env bash
# The console's API views as the fleet grows: each endpoint a console page calls, timed at
# 1,000 tenants and again at 10,000 (median of repeated requests, one `bulkhead up`, one run).
# Prints a markdown table. Options: --tenants N (10000), --schemas N (100: tier pro), --samples N (15).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tenants=10000; schemas=100; samples=15
while [ $# -gt 0 ]; do
  case "$1" in
    --tenants) tenants=$2; shift 2 ;;
    --schemas) schemas=$2; shift 2 ;;
    --samples) samples=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
source "$root/bench/lib.sh"
"$B" service create billing --migrations "$root/crates/provisioner/tests/fixtures/billing" \
  --reference countries --tier pro=schema >/dev/null
python3 "$root/bench/console_views.py" "http://127.0.0.1:$API_PORT" "$API_TOKEN" "$tenants" "$schemas" "$samples"
