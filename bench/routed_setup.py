"""Creates the tenant-routed benchmark's tenants through the admin API and fills them through
the gateway with a service login. Tenant n has slug rt<n> and id
00000000-0000-4000-8000-<n, 12 digits>; 1..SHARED are shared, the next SCHEMA schema tenants,
the rest database tenants.
Usage: routed_setup.py API_URL TOKEN GATEWAY_DSN TOTAL SHARED SCHEMA ROWS"""
import json
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import psycopg

api, token, dsn = sys.argv[1], sys.argv[2], sys.argv[3]
total, shared, schema, rows = (int(x) for x in sys.argv[4:8])


def create(n):
    mode = "shared" if n <= shared else "schema" if n <= shared + schema else "database"
    body = json.dumps({
        "slug": f"rt{n}", "id": f"00000000-0000-4000-8000-{n:012d}",
        "service": "routed", "mode": mode,
    }).encode()
    req = urllib.request.Request(f"{api}/v1/tenants", data=body, method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            r.read()
    except urllib.error.HTTPError as e:
        raise SystemExit(f"creating rt{n}: HTTP {e.code}: {e.read().decode()}")


started = time.time()
with ThreadPoolExecutor(max_workers=2) as pool:
    list(pool.map(create, range(1, total + 1)))
created = time.time()
with psycopg.connect(dsn, autocommit=True) as conn:
    for n in range(1, total + 1):
        conn.execute(
            f"SET LOCAL bulkhead.tenant = 'rt{n}'; "
            f"INSERT INTO items (id, value) SELECT g, 'value ' || g FROM generate_series(1, {rows}) g"
        )
print(f"created {total} tenants in {created - started:.1f} s, filled in {time.time() - created:.1f} s",
      file=sys.stderr)
