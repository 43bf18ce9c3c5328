"""Times the API calls behind each console page at 1,000 tenants and at N (see console.sh)."""
import json
import statistics
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

url, token, total, schemas, samples = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])


def call(method, path, body=None):
    req = urllib.request.Request(url + path, method=method, data=None if body is None else json.dumps(body).encode())
    req.add_header("Authorization", "Bearer " + token)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=600) as r:
        return r.read()


def create(slugs_tiers):
    def one(st):
        slug, tier = st
        call("POST", "/v1/tenants", {"slug": slug, "tier": tier, "service": "billing"})
    t0 = time.monotonic()
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(one, slugs_tiers))
    return time.monotonic() - t0


VIEWS = [
    ("Fleet", "/v1/fleet"),
    ("Tenants: first page", "/v1/tenants/search?limit=50"),
    ("Tenants: last page", None),  # offset filled in below
    ("Tenants: search a slug", "/v1/tenants/search?q=t-00042&limit=50"),
    ("Tenants: mode and tier filter", "/v1/tenants/search?mode=schema&tier=pro&limit=50"),
    ("Tenant: record and placements", "/v1/tenants/t-00042"),
    ("Tenant: usage, 7 days hourly", "/v1/usage/export?tenant=t-00042&since=2026-01-01&format=json"),
    ("Tenant: audit, newest 50", "/v1/audit?tenant=t-00042&last=50"),
    ("Tenant: audit chain verify", "/v1/audit/verify?tenant=t-00042"),
    ("Moves", "/v1/moves?limit=100"),
    ("Migrations: summary (the console's page)", "/v1/services/billing/migrations/summary?problems=100"),
    ("Migrations: status of every target (CLI)", "/v1/services/billing/migrations/status"),
    ("Isolation: latest runs", "/v1/proof"),
]


def measure(n):
    out = {}
    for name, path in VIEWS:
        if path is None:
            path = f"/v1/tenants/search?limit=50&offset={max(0, n - 50)}"
        times, size = [], 0
        for _ in range(samples):
            t0 = time.perf_counter()
            size = len(call("GET", path))
            times.append((time.perf_counter() - t0) * 1000)
        out[name] = (statistics.median(times), size)
    return out


def slugs(a, b):
    # One tenant in 100 is on the pro tier (a schema each), up to `schemas`.
    res = []
    for i in range(a, b):
        pro = i % 100 == 99 and i // 100 < schemas
        res.append((f"t-{i:05d}", "pro" if pro else "free"))
    return res


first = min(1000, total)
took = create(slugs(0, first))
print(f"created {first} tenants in {took:.1f} s ({first / took:.0f}/s)", file=sys.stderr)
at_small = measure(first)
took = create(slugs(first, total))
print(f"created {total - first} more in {took:.1f} s ({(total - first) / took:.0f}/s)", file=sys.stderr)
at_large = measure(total)

print(f"| view (API call) | ms at {first:,} tenants | ms at {total:,} | ratio | answer at {total:,} |")
print("|---|---|---|---|---|")
for name, _ in VIEWS:
    (a, _), (b, size) = at_small[name], at_large[name]
    print(f"| {name} | {a:.1f} | {b:.1f} | {b / a:.2f} | {size / 1024:.1f} KiB |")
