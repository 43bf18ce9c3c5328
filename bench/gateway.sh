#!/usr/bin/env bash
# The gateway against direct connections and PgBouncer (transaction pooling, same pool size),
# all in one run on one machine. Prints markdown tables. Takes about 4 minutes.
#   bench/gateway.sh [seconds per run, default 8]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup.sh"
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p bulkhead
B="$root/target/release/bulkhead"
T="${1:-8}"
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
PGBENCH="$BIN/pgbench"
work=$(mktemp -d /tmp/bulkhead-bench-XXXXXX)
chmod 755 "$work"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
GW_PORT=$(free_port); API_PORT=$(free_port); BOUNCER_PORT=$(free_port)
cleanup() {
  [ -n "${bouncer_pid:-}" ] && kill "$bouncer_pid" 2>/dev/null || true
  [ -n "${up_pid:-}" ] && kill -TERM "$up_pid" 2>/dev/null && wait "$up_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

export BULKHEAD_DATA_DIR="$work/.bulkhead"
BULKHEAD_LOG=warn "$B" up --api-listen 127.0.0.1:$API_PORT --gateway-listen 127.0.0.1:$GW_PORT > "$work/up.out" 2>&1 &
up_pid=$!
for _ in $(seq 1 120); do grep -q "Stop with" "$work/up.out" 2>/dev/null && break; sleep 0.5; done
grep -q "Stop with" "$work/up.out" || { cat "$work/up.out"; exit 1; }
PG_PORT=$(python3 -c "import json;print(json.load(open('$BULKHEAD_DATA_DIR/embedded.json'))['port'])")
PG_PW=$(cat "$BULKHEAD_DATA_DIR/secrets/postgres-password")

"$B" service create bench --mode database --migrations "$root/bench/fixtures/pgbench" >/dev/null
"$B" --json tenant create t1 --service bench > "$work/t1.json"
DB=$(python3 -c "import json;print(json.load(open('$work/t1.json'))['placement']['database'])")
KEY=$("$B" tenant key create t1 2>/dev/null)
PGPASSWORD="$PG_PW" "$PGBENCH" -q -i -I gvp -s 10 -h 127.0.0.1 -p "$PG_PORT" -U bulkhead "$DB" >/dev/null 2>&1

# PgBouncer: transaction pooling to the same database, pool size 20 like the gateway's.
mkdir -p "$work/bouncer"
cat > "$work/bouncer/pgbouncer.ini" <<INI
[databases]
bench = host=127.0.0.1 port=$PG_PORT dbname=$DB user=bulkhead password=$PG_PW
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
auth_type = trust
auth_file = $work/bouncer/users.txt
pool_mode = transaction
default_pool_size = 20
max_client_conn = 2000
unix_socket_dir =
logfile = $work/bouncer/pgbouncer.log
INI
echo '"bulkhead" ""' > "$work/bouncer/users.txt"
chown -R postgres "$work/bouncer" 2>/dev/null || true
if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- pgbouncer -q "$work/bouncer/pgbouncer.ini" >/dev/null 2>&1 & else pgbouncer -q "$work/bouncer/pgbouncer.ini" >/dev/null 2>&1 & fi
bouncer_pid=$!
sleep 1

run() { # target clients extra-args...
  local target=$1 clients=$2; shift 2
  local jobs=$(( clients < 2 ? 1 : 2 ))
  case $target in
    direct) PGPASSWORD="$PG_PW" "$PGBENCH" -n -T "$T" -c "$clients" -j "$jobs" "$@" -h 127.0.0.1 -p "$PG_PORT" -U bulkhead "$DB" ;;
    gateway) PGPASSWORD="$KEY" "$PGBENCH" -n -T "$T" -c "$clients" -j "$jobs" "$@" -h 127.0.0.1 -p "$GW_PORT" -U app bench ;;
    pgbouncer) "$PGBENCH" -n -T "$T" -c "$clients" -j "$jobs" "$@" -h 127.0.0.1 -p "$BOUNCER_PORT" -U bulkhead bench ;;
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

echo
echo "| idle clients | gateway RSS before (KiB) | after (KiB) | KiB per idle client |"
echo "|---|---|---|---|"
GW_PID=$up_pid
python3 "$root/bench/idle_clients.py" 127.0.0.1 "$GW_PORT" bench "$KEY" "$GW_PID" 1000 | awk '{ printf "| %s | %s | %s | %s |\n", $1, $2, $3, $4 }'
