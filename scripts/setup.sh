#!/usr/bin/env bash
# Installs what building and testing Bulkhead needs and a fresh Debian/Ubuntu machine lacks:
# PostgreSQL server binaries (no cluster is created or started: Bulkhead runs its own),
# libclang (the SQL parser's build uses bindgen), PgBouncer (the benchmark baseline),
# pgBackRest (point-in-time recovery), Chromium (the console's browser test), python3, Node.js and the drivers of the gateway's driver matrix (PyPI, npm), openssl (the TLS and
# token tests make their keys with it), CA certificates (for pip), procps (pgrep, for CI's
# leftover-server check).
# Idempotent: installs only what is missing.
set -euo pipefail

have_pg_server() {
  for d in "${BULKHEAD_PG_BINDIR:-}" /usr/lib/postgresql/*/bin /usr/local/pgsql/bin; do
    [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/postgres" ] && return 0
  done
  command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1
}

missing=()
have_pg_server || missing+=(postgresql postgresql-contrib)
# libclang itself, not libclang-cpp (another library some images carry without it).
ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/llvm-*/lib/libclang-[0-9]*.so* /usr/lib/*/libclang-[0-9]*.so* >/dev/null 2>&1 || missing+=(libclang-dev)
command -v pgbouncer >/dev/null 2>&1 || missing+=(pgbouncer)
# pgBackRest: WAL archiving and base backups for point-in-time recovery of one tenant.
command -v pgbackrest >/dev/null 2>&1 || missing+=(pgbackrest)
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
# A C++ compiler: the fuzz targets' libFuzzer is built from its C++ sources.
command -v c++ >/dev/null 2>&1 || missing+=(g++)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# Node.js and npm: the driver matrix runs node-postgres and knex.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
# Java, Debian's pgJDBC, Ruby's pg and ActiveRecord: the rest of the driver matrix.
command -v java >/dev/null 2>&1 || missing+=(default-jdk-headless)
[ -f /usr/share/java/postgresql.jar ] || missing+=(libpostgresql-jdbc-java)
ruby -e 'require "pg"; require "active_record"' >/dev/null 2>&1 || missing+=(ruby-pg ruby-activerecord)
# Chromium: the web console's browser test drives Debian's headless Chromium (through
# playwright-core from npm, which downloads no browser of its own).
[ -x /usr/bin/chromium ] || missing+=(chromium)
# CA certificates: pip fetches psycopg from PyPI over TLS (apt installs without recommends).
[ -s /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
# ip (iproute2): the partition test puts a PostgreSQL in a network namespace.
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
# pgrep: .ci/run checks that no test server outlives the suite.
command -v pgrep >/dev/null 2>&1 || missing+=(procps)

if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "Bulkhead needs: ${missing[*]} (PostgreSQL 15+ server binaries, libclang, pgbouncer). Install them with your package manager." >&2
    exit 1
  fi
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
      echo "Bulkhead needs: ${missing[*]}; run as root: apt-get install ${missing[*]}" >&2
      exit 1
    fi
  fi
  echo "setup: installing ${missing[*]}" >&2
  # Debian's postgresql package would create and start a cluster of its own; Bulkhead
  # starts its own servers, so ask for none.
  $SUDO mkdir -p /etc/postgresql-common
  if ! grep -qs '^create_main_cluster' /etc/postgresql-common/createcluster.conf; then
    echo "create_main_cluster = false" | $SUDO tee -a /etc/postgresql-common/createcluster.conf >/dev/null
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Python drivers and ORMs the gateway's driver matrix runs, from PyPI: psycopg 3,
# asyncpg, SQLAlchemy 2 on psycopg2, Django. psycopg2 is pinned: its own test suite (below)
# runs through the gateway, and the suite must be the installed version's.
psycopg2_version=2.9.10
python_drivers=("psycopg[binary]" asyncpg "sqlalchemy>=2" "psycopg2-binary==$psycopg2_version" "django>=4.2")
if command -v python3 >/dev/null 2>&1 \
  && ! python3 -c "import psycopg, asyncpg, sqlalchemy, psycopg2, django
assert psycopg2.__version__.split()[0] == '$psycopg2_version'" >/dev/null 2>&1; then
  echo "setup: installing ${python_drivers[*]} from PyPI" >&2
  python3 -m pip install -q "${python_drivers[@]}" 2>/dev/null \
    || python3 -m pip install -q --user --break-system-packages "${python_drivers[@]}" \
    || { echo "Bulkhead's tests need: python3 -m pip install ${python_drivers[*]}" >&2; exit 1; }
fi

# psycopg2's own test suite (shipped in its source distribution on PyPI), which the driver
# matrix runs through the gateway: into target/, where cargo's build output lives. The archive
# is fetched as a file (checked against PyPI's sha256), not through `pip download`, which would
# run psycopg2's setup.py and need pg_config.
root="$(cd "$(dirname "$0")/.." && pwd)"
suite="$root/target/psycopg2-suite"
if command -v python3 >/dev/null 2>&1 \
  && [ ! -f "$suite/psycopg2-$psycopg2_version/tests/__init__.py" ]; then
  echo "setup: fetching psycopg2 $psycopg2_version's test suite (source distribution) from PyPI" >&2
  mkdir -p "$suite"
  python3 - "$psycopg2_version" "$suite" <<'PY' \
    || { echo "Bulkhead's tests need psycopg2 $psycopg2_version's source distribution from pypi.org in $suite" >&2; exit 1; }
import hashlib, re, sys, tarfile, urllib.request
version, dest = sys.argv[1:3]
name = f"psycopg2-{version}.tar.gz"
# PyPI's simple index (the one pip reads): each file's link carries its sha256.
with urllib.request.urlopen("https://pypi.org/simple/psycopg2/", timeout=60) as r:
    index = r.read().decode()
found = re.search(r'href="([^"#]*/' + re.escape(name) + r')#sha256=([0-9a-f]{64})"', index)
if not found:
    sys.exit(f"{name} is not in PyPI's index")
url, sha256 = found.groups()
with urllib.request.urlopen(url, timeout=300) as r:
    data = r.read()
if hashlib.sha256(data).hexdigest() != sha256:
    sys.exit(f"{name}: sha256 does not match PyPI's")
with open(f"{dest}/{name}", "wb") as f:
    f.write(data)
with tarfile.open(f"{dest}/{name}") as t:
    # Python's data filter where it has one (3.11.4+, and Debian's security backport).
    kw = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    t.extractall(dest, **kw)
PY
fi

# The Node.js drivers of the matrix (pg, knex), from npm, into the drivers folder.
drivers="$root/crates/gateway/tests/drivers"
if [ ! -d "$drivers/node_modules/pg" ] || [ ! -d "$drivers/node_modules/knex" ]; then
  echo "setup: installing the Node.js drivers (npm ci)" >&2
  (cd "$drivers" && npm ci --no-audit --no-fund --silent)
fi

# playwright-core (pinned in its package-lock.json), for the console's browser test.
browser="$root/crates/console/tests/browser"
if [ ! -d "$browser/node_modules/playwright-core" ]; then
  echo "setup: installing playwright-core for the console's browser test (npm ci)" >&2
  (cd "$browser" && npm ci --no-audit --no-fund --silent)
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "Bulkhead is written in Rust and needs cargo 1.85 or newer (https://rustup.rs, or apt-get install cargo)." >&2
  exit 1
fi
