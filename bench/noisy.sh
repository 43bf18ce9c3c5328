#!/usr/bin/env bash
# A noisy neighbour held to its tier's limits: another tenant's latency idle and beside it,
# and beside a tenant without limits, all through the gateway. Prints a markdown table.
#   bench/noisy.sh [seconds per phase, default 8]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
T="${1:-8}"
UP_CONFIG=$(mktemp /tmp/bulkhead-noisy-XXXXXX.toml)
cat > "$UP_CONFIG" <<TOML
[gateway]
pool_size = 20

[limits.tiers.free]
max_transactions = 4
statement_timeout_ms = 5000
TOML
. "$root/bench/lib.sh"
trap 'cleanup; rm -f "$UP_CONFIG"' EXIT
"$B" service create noisy --mode shared --migrations "$root/bench/fixtures/routed" >/dev/null
"$B" tenant create quiet --service noisy --tier business >/dev/null
"$B" tenant create noisy-limited --service noisy --tier free >/dev/null
"$B" tenant create noisy-unlimited --service noisy --tier business >/dev/null
QUIET=$("$B" tenant key create quiet 2>/dev/null)
LIMITED=$("$B" tenant key create noisy-limited 2>/dev/null)
UNLIMITED=$("$B" tenant key create noisy-unlimited 2>/dev/null)
for key in "$QUIET" "$LIMITED" "$UNLIMITED"; do
  python3 -c "import psycopg,sys; c=psycopg.connect(sys.argv[1], autocommit=True); c.execute(\"INSERT INTO items (id, value) SELECT g, 'v' || g FROM generate_series(1, 100) g\")" \
    "host=127.0.0.1 port=$GW_PORT dbname=noisy user=app password=$key"
done
python3 "$root/bench/noisy.py" 127.0.0.1 "$GW_PORT" noisy "$QUIET" "$LIMITED" "$UNLIMITED" "$T"
