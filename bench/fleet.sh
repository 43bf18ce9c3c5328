#!/usr/bin/env bash
# Density: one box, the embedded cluster, a fleet of 10,000 shared + 5,000 schema + 100
# database tenants of one service, measured at 1,000 tenants and again at full size in one
# run: provisioning rate per mode (first and last thousand), tenant-routed TPS, a fan-out
# migration over every target, the gateway's memory (and with 1,000 idle clients), pg_class,
# a cold tenant's login and first transaction, verify over the service, and the backend
# connections the gateway opened. Prints markdown tables.
#   bench/fleet.sh [--tenants N (15100)] [--first N (1000): the smaller fleet] [--seconds S per TPS run (10)] [--clients C (16)]
#                  [--pool N: the gateway's connections per cluster (default: the gateway's default, 20)]
#                  [--warmup S: seconds of routed load before the TPS runs at each size (60)]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
TENANTS=15100 FIRST=1000 SECONDS_PER_RUN=10 CLIENTS=16 WARMUP=60
while [ $# -gt 0 ]; do
  case "$1" in
    --tenants) TENANTS=$2; shift 2 ;;
    --seconds) SECONDS_PER_RUN=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --first) FIRST=$2; shift 2 ;;
    --pool) POOL=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
if [ -n "${POOL:-}" ]; then
  UP_CONFIG=$(mktemp /tmp/bulkhead-fleet-config-XXXXXX.toml)
  printf '[gateway]\npool_size = %s\n' "$POOL" > "$UP_CONFIG"
fi
. "$root/bench/lib.sh"
[ -n "${POOL:-}" ] && trap 'cleanup; rm -f "$UP_CONFIG"' EXIT
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p bulkhead-gateway --bench routed_load
LOAD=$(ls -t "$root"/target/release/deps/routed_load-* | grep -v '\.d$' | head -1)
"$B" service create fleet --mode shared --migrations "$root/bench/fixtures/routed" >/dev/null
SVC_PW=$("$B" --json service credential create fleet --user fleet_svc | python3 -c "import json,sys;print(json.load(sys.stdin)['password'])")
python3 "$root/bench/fleet.py" \
  --api "http://127.0.0.1:$API_PORT" --token "$API_TOKEN" --bin "$B" --load "$LOAD" \
  --gateway "host=127.0.0.1 port=$GW_PORT dbname=fleet user=fleet_svc password=$SVC_PW" \
  --gateway-port "$GW_PORT" --postgres "host=127.0.0.1 port=$PG_PORT user=bulkhead password=$PG_PW" \
  --up-pid "$up_pid" --work "$work" --tenants "$TENANTS" --first "$FIRST" --seconds "$SECONDS_PER_RUN" --clients "$CLIENTS" --warmup "$WARMUP"
