#!/usr/bin/env bash
# The gateway against direct connections and PgBouncer (transaction pooling, same pool size),
# all in one run on one machine, then what clients' own session settings cost. Prints
# markdown tables. Takes about 5 minutes.
#   bench/gateway.sh [seconds per run, default 8]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
. "$root/bench/lib.sh"
T="${1:-8}"
BOUNCER_PORT=$(free_port)

"$B" service create bench --mode database --migrations "$root/bench/fixtures/pgbench" >/dev/null
"$B" --json tenant create t1 --service bench > "$work/t1.json"
DB=$(python3 -c "import json;print(json.load(open('$work/t1.json'))['placement']['database'])")
KEY=$("$B" tenant key create t1 2>/dev/null)
PGPASSWORD="$PG_PW" "$PGBENCH" -q -i -I gvp -s 10 -h 127.0.0.1 -p "$PG_PORT" -U bulkhead "$DB" >/dev/null 2>&1

# PgBouncer: transaction pooling to the same database, pool size 20 like the gateway's.
start_bouncer "bench = host=127.0.0.1 port=$PG_PORT dbname=$DB user=bulkhead password=$PG_PW" \
  "\"bulkhead\" \"$PG_PW\"" "default_pool_size = 20
max_client_conn = 2000"

run() { # target clients extra-args...
  local target=$1 clients=$2; shift 2
  local jobs=$(( clients < 2 ? 1 : 2 ))
  case $target in
    direct) PGPASSWORD="$PG_PW" "$PGBENCH" -n -T "$T" -c "$clients" -j "$jobs" "$@" -h 127.0.0.1 -p "$PG_PORT" -U bulkhead "$DB" ;;
    gateway) PGPASSWORD="$KEY" "$PGBENCH" -n -T "$T" -c "$clients" -j "$jobs" "$@" -h 127.0.0.1 -p "$GW_PORT" -U app bench ;;
    pgbouncer) PGPASSWORD="$PG_PW" "$PGBENCH" -n -T "$T" -c "$clients" -j "$jobs" "$@" -h 127.0.0.1 -p "$BOUNCER_PORT" -U bulkhead bench ;;
  esac 2>&1 | awk '/^tps/ { print int($3) }' | tail -1
}

echo "| test | clients | direct TPS | gateway TPS | PgBouncer TPS | gateway/direct | gateway/PgBouncer |"
echo "|---|---|---|---|---|---|---|"
for test in select-only tpcb-like; do
  flag=""; [ "$test" = select-only ] && flag="-S"
  for c in 1 16 64; do
    d=$(run direct "$c" $flag -M simple); g=$(run gateway "$c" $flag -M simple); p=$(run pgbouncer "$c" $flag -M simple)
    python3 -c "d,g,p=$d,$g,$p; print(f'| {\"$test\"} | $c | {d} | {g} | {p} | {g/d:.2f} | {g/p:.2f} |')"
  done
done
d=$(run direct 8 -S -C -M simple); g=$(run gateway 8 -S -C -M simple); p=$(run pgbouncer 8 -S -C -M simple)
python3 -c "d,g,p=$d,$g,$p; print(f'| select-only, new connection per transaction (-C) | 8 | {d} | {g} | {p} | {g/d:.2f} | {g/p:.2f} |')"
d=$(run direct 16 -S -M prepared); g=$(run gateway 16 -S -M prepared)
python3 -c "d,g=$d,$g; print(f'| select-only, -M prepared | 16 | {d} | {g} | (1.18 has no prepared statements in transaction mode) | {g/d:.2f} | - |')"

# Virtual session state: two groups of 8 clients at once, each group with its own TimeZone
# and statement_timeout (startup options, as drivers send them), sharing the gateway's pool,
# so a connection often changes hands between the groups and gets the other's settings;
# against the same two groups without settings.
pair() { # PGOPTIONS-of-group-a PGOPTIONS-of-group-b
  PGOPTIONS="$1" run gateway 8 -S -M simple > "$work/pair_a" &
  local other=$!
  PGOPTIONS="$2" run gateway 8 -S -M simple > "$work/pair_b"
  wait "$other"
  echo $(( $(cat "$work/pair_a") + $(cat "$work/pair_b") ))
}
echo
echo "| select-only, 2 × 8 clients | gateway TPS | vs no settings |"
echo "|---|---|---|"
plain=$(pair "" "")
own=$(pair "-c TimeZone=America/New_York -c statement_timeout=30s" "-c TimeZone=Asia/Tokyo -c statement_timeout=20s")
python3 -c "p,o=$plain,$own; print(f'| no session settings | {p} | 1.00 |'); print(f'| each group its own TimeZone and statement_timeout | {o} | {o/p:.2f} |')"

echo
echo "| idle clients | gateway RSS before (KiB) | after (KiB) | KiB per idle client |"
echo "|---|---|---|---|"
GW_PID=$up_pid
python3 "$root/bench/idle_clients.py" 127.0.0.1 "$GW_PORT" bench "$KEY" "$GW_PID" 1000 | awk '{ printf "| %s | %s | %s | %s |\n", $1, $2, $3, $4 }'
