"""psycopg 3 through the gateway, for the driver matrix: types round trip, each tenant sees
only its rows, pipeline mode, the prepare threshold crossed, COPY, a server-side cursor, and
two connections with their own TimeZone interleaved on a pool of one; then the same tenants
through a service login, each transaction choosing its tenant with SET LOCAL bulkhead.tenant.
Usage: matrix_psycopg.py HOST PORT DBNAME KEY... with MATRIX_SERVICE_USER,
MATRIX_SERVICE_PASSWORD and MATRIX_TENANTS (the keys' tenants, in order). Prints "ok"."""
import datetime
import decimal
import os
import sys
import uuid

import psycopg
from psycopg import sql

host, port, db, keys = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]


def connect(key, **kw):
    return psycopg.connect(host=host, port=port, dbname=db, user="app", password=key, **kw)


VALUES = (
    7, 2**40, decimal.Decimal("12.345"), "tëxt", True,
    datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
    uuid.UUID("12345678-1234-5678-1234-567812345678"), {"a": [1, 2]}, b"\x00\xff", [1, 2, 3], None,
)
SQL = ("SELECT %s::int, %s::bigint, %s::numeric, %s::text, %s::bool, %s::timestamptz, %s::uuid,"
       " %s::jsonb, %s::bytea, %s::int[], %s::text")

for n, key in enumerate(keys):
    with connect(key, autocommit=True) as conn:
        from psycopg.types.json import Jsonb
        vals = list(VALUES)
        vals[7] = Jsonb(vals[7])
        for _ in range(8):  # past the prepare threshold (5)
            row = conn.execute(SQL, vals).fetchone()
        assert row[:7] == VALUES[:7] and row[7] == VALUES[7] and bytes(row[8]) == VALUES[8], row
        assert row[9] == VALUES[9] and row[10] is None, row
        conn.execute("INSERT INTO customers (id, name) VALUES (%s, %s)", (n, f"mine-{n}"))
        names = [r[0] for r in conn.execute("SELECT name FROM customers")]
        assert names == [f"mine-{n}"], names
        with conn.pipeline():
            for i in range(10):
                conn.execute("INSERT INTO customers (id, name) VALUES (%s, %s)", (100 + i, f"p{i}"))
        # COPY FROM: PostgreSQL refuses it into tables under row-level security (shared mode).
        if n > 0:
            with conn.cursor() as cur:
                with cur.copy("COPY customers (id, name) FROM STDIN") as copy:
                    for i in range(5):
                        copy.write_row((200 + i, f"c{i}"))
        with conn.cursor() as cur:
            with cur.copy("COPY (SELECT id FROM customers) TO STDOUT") as copy:
                copied = sum(1 for _ in copy.rows())
        assert copied == (16 if n > 0 else 11), copied
        with conn.transaction():
            with conn.cursor(name="server_side") as cur:
                cur.execute("SELECT id FROM customers ORDER BY id")
                assert len(cur.fetchmany(3)) == 3
        conn.execute("DELETE FROM customers")

a = connect(keys[0], autocommit=True)
b = connect(keys[-1], autocommit=True)
a.execute("SET TimeZone TO 'America/New_York'")
b.execute("SET TimeZone TO 'Asia/Tokyo'")
for _ in range(3):
    assert a.execute("SHOW TimeZone").fetchone()[0] == "America/New_York"
    assert b.execute("SHOW TimeZone").fetchone()[0] == "Asia/Tokyo"
    t = a.execute("SELECT '2020-01-01 00:00+00'::timestamptz").fetchone()[0]
    assert t.utcoffset() == datetime.timedelta(hours=-5), t

# A service login: one connection, the tenant chosen per transaction (SET takes no
# parameters, so the slug goes in as a literal).
user, password = os.environ["MATRIX_SERVICE_USER"], os.environ["MATRIX_SERVICE_PASSWORD"]
tenants = os.environ["MATRIX_TENANTS"].split()
with psycopg.connect(host=host, port=port, dbname=db, user=user, password=password) as conn:
    def choose(tenant):
        conn.execute(sql.SQL("SET LOCAL bulkhead.tenant = {}").format(sql.Literal(tenant)))
    for tenant in tenants:
        with conn.transaction():
            choose(tenant)
            conn.execute("INSERT INTO customers (id, name) VALUES (%s, %s)", (900, f"svc-{tenant}"))
            for _ in range(6):  # prepared under each tenant's role, never shared
                row = conn.execute(SQL, vals).fetchone()
            assert row[:7] == VALUES[:7] and row[10] is None, row
    for tenant in tenants:
        with conn.transaction():
            choose(tenant)
            names = [r[0] for r in conn.execute("SELECT name FROM customers WHERE name LIKE 'svc-%'")]
            assert names == [f"svc-{tenant}"], (tenant, names)
            conn.execute("DELETE FROM customers WHERE id = 900")
    try:
        conn.execute("SELECT name FROM customers")
        raise AssertionError("a statement with no tenant chosen was not refused")
    except psycopg.errors.InsufficientPrivilege as e:
        assert "no tenant" in str(e), e
    conn.rollback()
print("ok")
