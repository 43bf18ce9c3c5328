# What the gateway benchmarks share: a release build, a work folder removed on exit, and a
# running `bulkhead up` (embedded PostgreSQL) on free ports, with UP_CONFIG as its --config when set.
# Source it after setting `root`.
# Sets B, BIN, PGBENCH, work, GW_PORT, API_PORT, PG_PORT, PG_PW, API_TOKEN, up_pid; defines
# start_bouncer.
"$root/scripts/setup.sh"
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p bulkhead
B="$root/target/release/bulkhead"
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
PGBENCH="$BIN/pgbench"
work=$(mktemp -d /tmp/bulkhead-bench-XXXXXX)
chmod 755 "$work"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
GW_PORT=$(free_port); API_PORT=$(free_port)
cleanup() {
  [ -n "${bouncer_pid:-}" ] && kill "$bouncer_pid" 2>/dev/null || true
  [ -n "${up_pid:-}" ] && kill -TERM "$up_pid" 2>/dev/null && wait "$up_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export BULKHEAD_DATA_DIR="$work/.bulkhead"
BULKHEAD_LOG=warn "$B" up ${UP_CONFIG:+--config "$UP_CONFIG"} --api-listen 127.0.0.1:$API_PORT --gateway-listen 127.0.0.1:$GW_PORT > "$work/up.out" 2>&1 &
up_pid=$!
for _ in $(seq 1 120); do grep -q "Stop with" "$work/up.out" 2>/dev/null && break; sleep 0.5; done
grep -q "Stop with" "$work/up.out" || { cat "$work/up.out"; exit 1; }
PG_PORT=$(python3 -c "import json;print(json.load(open('$BULKHEAD_DATA_DIR/embedded.json'))['port'])")
PG_PW=$(cat "$BULKHEAD_DATA_DIR/secrets/postgres-password")
API_TOKEN=$(python3 -c "import json;print(json.load(open('$BULKHEAD_DATA_DIR/instance.json'))['token'])")

# Starts PgBouncer on port $BOUNCER_PORT in transaction mode with plain passwords (like the
# gateway's keys: both ask every client for its password), as the postgres account when run
# as root; sets bouncer_pid (stopped on exit).
#   start_bouncer '[databases] lines' 'users.txt lines' '[pgbouncer] settings beyond the common ones'
start_bouncer() {
  mkdir -p "$work/bouncer"
  cat > "$work/bouncer/pgbouncer.ini" <<INI
[databases]
$1
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
auth_type = plain
auth_file = $work/bouncer/users.txt
pool_mode = transaction
unix_socket_dir =
logfile = $work/bouncer/pgbouncer.log
$3
INI
  printf '%s\n' "$2" > "$work/bouncer/users.txt"
  chown -R postgres "$work/bouncer" 2>/dev/null || true
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- pgbouncer -q "$work/bouncer/pgbouncer.ini" >/dev/null 2>&1 & else pgbouncer -q "$work/bouncer/pgbouncer.ini" >/dev/null 2>&1 & fi
  bouncer_pid=$!
  sleep 1
}
