#!/usr/bin/env bash
# Tenant-routed transactions: a service login chooses a tenant per transaction
# (BEGIN; SET LOCAL bulkhead.tenant; SELECT by key; COMMIT) over 1,000 tenants spread across
# the three modes, against the same four statements sent directly to PostgreSQL with
# SET LOCAL of a setting. Prints a markdown table. Takes about 3 minutes.
#   bench/routed.sh [seconds per run, default 8]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
. "$root/bench/lib.sh"
T="${1:-8}"
TOTAL=1000 SHARED=900 SCHEMA=90 ROWS=100

"$B" service create routed --mode shared --migrations "$root/bench/fixtures/routed" >/dev/null
SVC_PW=$("$B" --json service credential create routed --user routed_svc | python3 -c "import json,sys;print(json.load(sys.stdin)['password'])")
python3 "$root/bench/routed_setup.py" "http://127.0.0.1:$API_PORT" "$API_TOKEN" \
  "host=127.0.0.1 port=$GW_PORT dbname=routed user=routed_svc password=$SVC_PW" "$TOTAL" "$SHARED" "$SCHEMA" "$ROWS"

cat > "$work/gateway_all.sql" <<SQL
\set n random(1, $TOTAL)
\set k random(1, $ROWS)
BEGIN;
SET LOCAL bulkhead.tenant = rt:n;
SELECT value FROM items WHERE id = :k;
COMMIT;
SQL
sed "s/random(1, $TOTAL)/random(1, $SHARED)/" "$work/gateway_all.sql" > "$work/gateway_shared.sql"
cat > "$work/direct.sql" <<SQL
\set n random(1, $SHARED)
\set k random(1, $ROWS)
BEGIN;
SET LOCAL app.tenant = :n;
SELECT value FROM items WHERE tenant_id = ('00000000-0000-4000-8000-' || lpad(current_setting('app.tenant'), 12, '0'))::uuid AND id = :k;
COMMIT;
SQL

run() { # target script clients
  local target=$1 script=$2 clients=$3
  local jobs=$(( clients < 2 ? 1 : 2 ))
  case $target in
    direct) PGPASSWORD="$PG_PW" "$PGBENCH" -n -T "$T" -c "$clients" -j "$jobs" -M simple -f "$script" -h 127.0.0.1 -p "$PG_PORT" -U bulkhead bh_routed ;;
    gateway) PGPASSWORD="$SVC_PW" "$PGBENCH" -n -T "$T" -c "$clients" -j "$jobs" -M simple -f "$script" -h 127.0.0.1 -p "$GW_PORT" -U routed_svc routed ;;
  esac 2>&1 | awk '/^tps/ { print int($3) } /aborted|error/ { print "ERR: " $0 > "/dev/stderr" }' | tail -1
}

echo "| clients | direct, SET LOCAL of a setting (shared tenants) | gateway, shared tenants | gateway, 1,000 tenants in 3 modes | gateway/direct (shared) | gateway/direct (all modes) |"
echo "|---|---|---|---|---|---|"
for c in 1 16 64; do
  d=$(run direct "$work/direct.sql" "$c"); s=$(run gateway "$work/gateway_shared.sql" "$c"); a=$(run gateway "$work/gateway_all.sql" "$c")
  python3 -c "d,s,a=$d,$s,$a; print(f'| $c | {d} | {s} | {a} | {s/d:.2f} | {a/d:.2f} |')"
done
