#!/usr/bin/env bash
# Tenant-routed transactions: a service login chooses a tenant per transaction
# (BEGIN; SET LOCAL bulkhead.tenant; SELECT by key; COMMIT) over 1,000 tenants spread across
# the three modes, against what a team builds by hand on the same PostgreSQL: an application
# role under row-level security with `SET LOCAL app.tenant`, directly and through PgBouncer
# (transaction pooling, the same pool size). Prints markdown tables. Takes about 6 minutes.
#   bench/routed.sh [seconds per run, default 8]
# UP_CONFIG=file runs the gateway with that bulkhead.toml (e.g. `[gateway] threads = 2`).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
. "$root/bench/lib.sh"
T="${1:-8}"
TOTAL=1000 SHARED=900 SCHEMA=90 ROWS=100
BOUNCER_PORT=$(free_port)
APP_PW=app-bench-password
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p bulkhead-gateway --bench routed_load
LOAD=$(ls -t "$root"/target/release/deps/routed_load-* | grep -v '\.d$' | head -1)

# Bulkhead: a service with one keyed table and 1,000 tenants through the admin API.
"$B" service create routed --mode shared --migrations "$root/bench/fixtures/routed" >/dev/null
SVC_PW=$("$B" --json service credential create routed --user routed_svc | python3 -c "import json,sys;print(json.load(sys.stdin)['password'])")
python3 "$root/bench/routed_setup.py" "http://127.0.0.1:$API_PORT" "$API_TOKEN" \
  "host=127.0.0.1 port=$GW_PORT dbname=routed user=routed_svc password=$SVC_PW" "$TOTAL" "$SHARED" "$SCHEMA" "$ROWS"

# By hand, on the same cluster: what the articles recommend. Shared tenants in database
# `hand` under an RLS policy on a setting, read by an application role (not the owner, not a
# superuser); schema tenants as schemas t<n> of `hand`; database tenants as databases hand_<n>.
psql_su() { PGPASSWORD="$PG_PW" psql -qX -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U bulkhead "$@" >/dev/null; }
psql_su -d postgres -c "CREATE ROLE app LOGIN PASSWORD '$APP_PW'" -c "CREATE DATABASE hand"
psql_su -d hand <<SQL
GRANT CONNECT ON DATABASE hand TO app;
CREATE TABLE items (tenant_id uuid NOT NULL, id int NOT NULL, value text NOT NULL, PRIMARY KEY (tenant_id, id));
ALTER TABLE items ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON items USING (tenant_id = current_setting('app.tenant')::uuid);
GRANT USAGE ON SCHEMA public TO app;
GRANT SELECT, INSERT, UPDATE, DELETE ON items TO app;
INSERT INTO items SELECT ('00000000-0000-4000-8000-' || (100000000000 + t))::uuid, g, 'value ' || g
  FROM generate_series(1, $SHARED) t, generate_series(1, $ROWS) g;
DO \$\$ BEGIN
  FOR n IN $((SHARED + 1))..$((SHARED + SCHEMA)) LOOP
    EXECUTE format('CREATE SCHEMA t%s; CREATE TABLE t%s.items (id int PRIMARY KEY, value text NOT NULL);
      INSERT INTO t%s.items SELECT g, %L || g FROM generate_series(1, $ROWS) g;
      GRANT USAGE ON SCHEMA t%s TO app; GRANT SELECT, INSERT, UPDATE, DELETE ON t%s.items TO app', n, n, n, 'value ', n, n);
  END LOOP;
END \$\$;
ANALYZE;
SQL
for n in $(seq $((SHARED + SCHEMA + 1)) "$TOTAL"); do
  psql_su -d postgres -c "CREATE DATABASE hand_$n"
  psql_su -d "hand_$n" -c "GRANT CONNECT ON DATABASE hand_$n TO app" -c "GRANT USAGE ON SCHEMA public TO app" \
    -c "CREATE TABLE items (id int PRIMARY KEY, value text NOT NULL)" \
    -c "INSERT INTO items SELECT g, 'value ' || g FROM generate_series(1, $ROWS) g" -c "GRANT SELECT ON items TO app"
done

# PgBouncer: transaction pooling, a pool per (database, user) of 20 and at most 20 server
# connections per user over all its databases: the gateway's 20 per cluster.
start_bouncer "* = host=127.0.0.1 port=$PG_PORT" "$(printf '"app" "%s"\n"bulkhead" "%s"' "$APP_PW" "$PG_PW")" \
  "default_pool_size = 20
max_user_connections = 20
max_client_conn = 4000"

# The scripts. Shared tenants at random; the hand-built one names its tenant by its uuid.
cat > "$work/gateway_all.sql" <<SQL
\set n random(1, $TOTAL)
\set k random(1, $ROWS)
BEGIN;
SET LOCAL bulkhead.tenant = rt:n;
SELECT value FROM items WHERE id = :k;
COMMIT;
SQL
sed "s/random(1, $TOTAL)/random(1, $SHARED)/" "$work/gateway_all.sql" > "$work/gateway_shared.sql"
cat > "$work/app.sql" <<SQL
\set t 100000000000 + random(1, $SHARED)
\set k random(1, $ROWS)
BEGIN;
SET LOCAL app.tenant = '00000000-0000-4000-8000-:t';
SELECT value FROM items WHERE id = :k;
COMMIT;
SQL
# A superuser bypasses RLS: the same filter, written out in the query.
cat > "$work/superuser.sql" <<SQL
\set t 100000000000 + random(1, $SHARED)
\set k random(1, $ROWS)
BEGIN;
SET LOCAL app.tenant = '00000000-0000-4000-8000-:t';
SELECT value FROM items WHERE tenant_id = current_setting('app.tenant')::uuid AND id = :k;
COMMIT;
SQL

sessions() { PGPASSWORD="$PG_PW" psql -qXAt -h 127.0.0.1 -p "$PG_PORT" -U bulkhead -d postgres -c "SELECT sum(sessions) FROM pg_stat_database"; }
run() { # target script clients
  local target=$1 script=$2 clients=$3
  local jobs=$(( clients < 2 ? 1 : 2 ))
  case $target in
    superuser) PGPASSWORD="$PG_PW" "$PGBENCH" -n -T "$T" -c "$clients" -j "$jobs" -M simple -f "$script" -h 127.0.0.1 -p "$PG_PORT" -U bulkhead hand ;;
    app) PGPASSWORD="$APP_PW" "$PGBENCH" -n -T "$T" -c "$clients" -j "$jobs" -M simple -f "$script" -h 127.0.0.1 -p "$PG_PORT" -U app hand ;;
    pgbouncer) PGPASSWORD="$APP_PW" "$PGBENCH" -n -T "$T" -c "$clients" -j "$jobs" -M simple -f "$script" -h 127.0.0.1 -p "$BOUNCER_PORT" -U app hand ;;
    gateway) PGPASSWORD="$SVC_PW" "$PGBENCH" -n -T "$T" -c "$clients" -j "$jobs" -M simple -f "$script" -h 127.0.0.1 -p "$GW_PORT" -U routed_svc routed ;;
  esac 2>&1 | awk '/^tps/ { print int($3) } /aborted|error/ { print "ERR: " $0 > "/dev/stderr" }' | tail -1
}
# The mixed load: pgbench binds a client to one database, so a load generator of ours plays
# both sides the same way (each client keeps one connection per database it has used).
# Prints "TPS connects-per-second".
mixed() { # gateway|pgbouncer clients
  local before after tps
  before=$(sessions)
  case $1 in
    gateway) tps=$("$LOAD" gateway "host=127.0.0.1 port=$GW_PORT dbname=routed user=routed_svc password=$SVC_PW" "$2" "$T" "$TOTAL" "$SHARED" "$SCHEMA" "$ROWS") ;;
    pgbouncer) tps=$("$LOAD" hand "host=127.0.0.1 port=$BOUNCER_PORT user=app password=$APP_PW" "$2" "$T" "$TOTAL" "$SHARED" "$SCHEMA" "$ROWS") ;;
  esac
  after=$(sessions)
  echo "$tps $(( (after - before) / T ))"
}

echo "Shared tenants, one picked at random per transaction ($SHARED tenants, pgbench -M simple, $T s per run):"
echo
echo "| clients | direct, superuser | direct, app role under RLS | PgBouncer, app role under RLS | gateway, service login | gateway/PgBouncer | gateway/direct app role | gateway/direct superuser |"
echo "|---|---|---|---|---|---|---|---|"
for c in 1 16 64; do
  s=$(run superuser "$work/superuser.sql" "$c"); a=$(run app "$work/app.sql" "$c")
  p=$(run pgbouncer "$work/app.sql" "$c"); g=$(run gateway "$work/gateway_shared.sql" "$c")
  python3 -c "s,a,p,g=$s,$a,$p,$g; print(f'| $c | {s} | {a} | {p} | {g} | {g/p:.2f} | {g/a:.2f} | {g/s:.2f} |')"
done
echo
echo "All $TOTAL tenants ($SHARED shared, $SCHEMA schema, $((TOTAL - SHARED - SCHEMA)) database), one at random per transaction, the same load generator on both sides ($T s per run):"
echo
echo "| clients | PgBouncer, by hand (RLS / search_path / own database) | gateway, service login | gateway/PgBouncer | server connects/s, PgBouncer | server connects/s, gateway | gateway, pgbench |"
echo "|---|---|---|---|---|---|---|"
for c in 1 16 64; do
  read -r p pc < <(mixed pgbouncer "$c"); read -r g gc < <(mixed gateway "$c")
  gb=$(run gateway "$work/gateway_all.sql" "$c")
  python3 -c "p,g=$p,$g; print(f'| $c | {p} | {g} | {g/p:.2f} | $pc | $gc | $gb |')"
done
