"""The driver of bench/fleet.sh: grows one service's fleet through the admin API and measures
it at 1,000 tenants and at full size. Tenant n has slug rt<n>; every 151st is a database
tenant, every 3rd (otherwise) a schema tenant, the rest shared: at 15,100 that is 100
database, 5,000 schema and 10,000 shared tenants."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import resource

import psycopg

# A thousand idle clients need more descriptors than the default 1,024.
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(_hard, 8192), _hard))

ap = argparse.ArgumentParser()
for name in ("api", "token", "bin", "load", "gateway", "postgres", "work"):
    ap.add_argument(f"--{name}", required=True)
for name in ("gateway-port", "up-pid", "tenants", "seconds", "clients", "warmup"):
    ap.add_argument(f"--{name}", type=int, required=True)
ap.add_argument("--first", type=int, default=1000)
a = ap.parse_args()
ROWS = 20


def say(text):
    print(text, file=sys.stderr, flush=True)


def mode_of(n):
    return "database" if n % 151 == 0 else "schema" if n % 3 == 0 else "shared"


def api(method, path, body=None):
    req = urllib.request.Request(a.api + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": "Bearer " + a.token,
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            return json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        raise SystemExit(f"{method} {path}: HTTP {e.code}: {e.read().decode()}")


latency = {"shared": [], "schema": [], "database": []}
MODES = ("shared", "schema", "database")


def create(n):
    t = time.perf_counter()
    api("POST", "/v1/tenants", {"slug": f"rt{n}", "service": "fleet", "mode": mode_of(n)})
    latency[mode_of(n)].append(time.perf_counter() - t)


def grow(first, last):
    t = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(create, range(first, last + 1)))
    took = time.monotonic() - t
    with psycopg.connect(a.gateway, autocommit=True) as c:
        for n in range(first, last + 1):
            c.execute(f"BEGIN; SET LOCAL bulkhead.tenant = 'rt{n}'; "
                      f"INSERT INTO items (id, value) SELECT g, 'v' || g FROM generate_series(1, {ROWS}) g; COMMIT")
    say(f"grew to {last} tenants: {last - first + 1} in {took:.1f} s")


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def pg(sql, db="postgres"):
    with psycopg.connect(f"{a.postgres} dbname={db}", autocommit=True) as c:
        return c.execute(sql).fetchall()


def backends():
    return pg("SELECT count(*) FROM pg_stat_activity WHERE usename LIKE 'bh\\_gw\\_%' OR usename LIKE 'bh\\_gwd\\_%'")[0][0]


def sessions():
    """Backend sessions opened so far: (the service's pool database, database tenants' databases)."""
    return tuple(pg("SELECT coalesce(sum(sessions) FILTER (WHERE datname = 'bh_fleet'), 0),"
                    " coalesce(sum(sessions) FILTER (WHERE datname LIKE 't\\_%'), 0) FROM pg_stat_database")[0])


def tps(total, pick="all", seconds=None):
    peak = [0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], backends())
            time.sleep(0.2)
    s = threading.Thread(target=sample)
    s.start()
    out = subprocess.run([a.load, "gateway", a.gateway, str(a.clients), str(seconds or a.seconds), str(total), "0", "0", str(ROWS), pick],
                         capture_output=True, text=True, check=True)
    stop.set()
    s.join()
    return int(out.stdout.strip()), peak[0]


def fan_out(version):
    d = os.path.join(a.work, f"migrations-{version}")
    os.makedirs(d, exist_ok=True)
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures/routed")
    for f in os.listdir(src):
        with open(os.path.join(src, f)) as i, open(os.path.join(d, f), "w") as o:
            o.write(i.read())
    for v in range(2, version + 1):
        with open(os.path.join(d, f"V{v}__column_{v}.sql"), "w") as o:
            o.write(f"ALTER TABLE items ADD COLUMN c{v} int;\n")
    t = time.monotonic()
    out = subprocess.run([a.bin, "--json", "migrate", "fleet", "--migrations", d], capture_output=True, text=True)
    took = time.monotonic() - t
    if out.returncode != 0:
        raise SystemExit(f"migrate failed: {out.stdout[-2000:]} {out.stderr[-2000:]}")
    status = json.loads(subprocess.run([a.bin, "--json", "migrate", "status", "fleet"], capture_output=True, text=True, check=True).stdout)
    schema_targets = sum(1 for t in status if t["kind"] in ("schema", "database"))
    return took, len(status), schema_targets


def cold_logins(ns):
    """Login and first transaction of tenants no client used yet, with a new API key each."""
    times = []
    for n in ns:
        key = api("POST", f"/v1/tenants/rt{n}/keys")["key"]
        t = time.perf_counter()
        with psycopg.connect(host="127.0.0.1", port=a.gateway_port, dbname="fleet", user=f"rt{n}", password=key) as c:
            c.execute("SELECT count(*) FROM items").fetchall()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), max(times)


def verify():
    t = time.monotonic()
    out = subprocess.run([a.bin, "verify", "fleet"], capture_output=True, text=True)
    took = time.monotonic() - t
    if out.returncode != 0:
        raise SystemExit(f"verify failed after {took:.1f} s: {out.stdout[-2000:]} {out.stderr[-2000:]}")
    return took


def idle_clients(n):
    before = rss_mib(a.up_pid)
    conns = [psycopg.connect(a.gateway, autocommit=True) for _ in range(n)]
    for c in conns[:: max(1, n // 50)]:
        c.execute("SELECT 1")
    time.sleep(1)
    during = rss_mib(a.up_pid)
    for c in conns:
        c.close()
    return before, during


def facts(total):
    say(f"measuring at {total} tenants")
    r = {}
    if a.warmup:
        # Every backend loads a schema tenant's relations the first time it serves it: a
        # short run at 5,000 schemas measured mostly that (0.65× at 15,100 cold, 0.88× warm).
        say(f"warming up for {a.warmup} s")
        tps(total, "all", a.warmup)
    before, started = sessions(), time.monotonic()
    r["tps"], r["peak_backends"] = tps(total)
    took = time.monotonic() - started
    r["connects_pool"], r["connects_tenant_db"] = (float(b - x) / took for x, b in zip(before, sessions()))
    if total > a.first:
        # The same instance, tenants picked among the first ones only: what the spread over
        # every tenant costs, apart from the bigger fleet.
        r["tps_first"], _ = tps(a.first)
    for pick in MODES:
        r[f"tps_{pick}"], peak = tps(total, pick)
        r["peak_backends"] = max(r["peak_backends"], peak)
    r["rss"] = rss_mib(a.up_pid)
    r["pg_class"] = pg("SELECT count(*) FROM pg_class", "bh_fleet")[0][0]
    r["pg_class_bytes"] = pg("SELECT pg_total_relation_size('pg_class')", "bh_fleet")[0][0]
    r["control_bytes"] = pg("SELECT pg_database_size('bulkhead')")[0][0]
    r["cold_median"], r["cold_max"] = cold_logins(range(total - 20, total))
    r["verify"] = verify()
    return r


first = min(a.first, a.tenants)
grow(1, first)
small = facts(first)
small["fan_out"] = fan_out(2)
if a.tenants > first:
    grow(first + 1, a.tenants)
large = facts(a.tenants)
large["fan_out"] = fan_out(3)
large["idle_before"], large["idle_during"] = idle_clients(1000)

print("| mode | tenants | ms per tenant, first 1,000 | ms per tenant, last 1,000 |")
print("|---|---|---|---|")
for m, xs in latency.items():
    k = min(1000, len(xs))
    if k:
        print(f"| {m} | {len(xs):,} | {statistics.mean(xs[:k]) * 1000:.1f} | {statistics.mean(xs[-k:]) * 1000:.1f} |")
print()
print(f"| figure | at {first:,} tenants | at {a.tenants:,} | ratio |")
print("|---|---|---|---|")
def row(name, k, fmt="{:.1f}"):
    x, y = small[k], large[k]
    print(f"| {name} | {fmt.format(x)} | {fmt.format(y)} | {y / x if x else 0:.2f} |")
row(f"tenant-routed TPS ({a.clients} clients, a tenant at random)", "tps", "{:,}")
for pick in MODES:
    row(f"tenant-routed TPS, {pick} tenants only", f"tps_{pick}", "{:,}")
if "tps_first" in large:
    print(f"| tenant-routed TPS on the full fleet, tenants picked among the first {first:,} | | {large['tps_first']:,} | {large['tps_first'] / small['tps']:.2f} |")
row("backend connects per second during the mixed run: the pool database", "connects_pool")
row("the same: database tenants' databases", "connects_tenant_db")
row("peak backend connections of the gateway during it", "peak_backends", "{}")
row("bulkhead up RSS after it (MiB)", "rss")
row("pg_class rows in the service database", "pg_class", "{:,}")
print(f"| pg_class size (MiB) | {small['pg_class_bytes'] / 2**20:.1f} | {large['pg_class_bytes'] / 2**20:.1f} | {large['pg_class_bytes'] / small['pg_class_bytes']:.2f} |")
print(f"| control database size (MiB) | {small['control_bytes'] / 2**20:.1f} | {large['control_bytes'] / 2**20:.1f} | {large['control_bytes'] / small['control_bytes']:.2f} |")
row("cold tenant: key login + first transaction, median ms", "cold_median")
row("cold tenant: worst of 20, ms", "cold_max")
row("verify over the service, s", "verify", "{:.2f}")
print(f"| bulkhead up RSS with 1,000 idle clients (MiB; before them) | | {large['idle_during']:.1f} ({large['idle_before']:.1f}) | |")
print()
print("| fan-out of one ALTER TABLE | targets | of them schema or database | seconds | ms per target |")
print("|---|---|---|---|---|")
for label, r in ((f"at {first:,} tenants", small), (f"at {a.tenants:,} tenants", large)):
    took, targets, per = r["fan_out"]
    print(f"| {label} | {targets:,} | {per:,} | {took:.2f} | {took / targets * 1000:.2f} |")
