"""psycopg 3 with a service login: the tenant is chosen per transaction with SET LOCAL
bulkhead.tenant (a literal: SET takes no parameters; inside the BEGIN psycopg sends itself),
and for the session with SET. Statements past psycopg's prepare threshold are
prepared once per tenant role, never shared across tenants.
Usage: psycopg_service.py DSN TENANT_A TENANT_B. Prints "ok" and exits 0 when all holds."""
import sys

import psycopg
from psycopg import sql

dsn, a, b = sys.argv[1:4]


def choose(conn, tenant, local=True):
    stmt = "SET LOCAL bulkhead.tenant = {}" if local else "SET bulkhead.tenant = {}"
    conn.execute(sql.SQL(stmt).format(sql.Literal(tenant)))


with psycopg.connect(dsn) as conn:
    for tenant, name in ((a, "a-row"), (b, "b-row")):
        choose(conn, tenant)
        conn.execute("INSERT INTO customers (id, name) VALUES (%s, %s)", (1, name))
        conn.commit()
    for tenant, name in ((a, "a-row"), (b, "b-row")):
        choose(conn, tenant)
        rows = conn.execute("SELECT name FROM customers ORDER BY id").fetchall()
        assert rows == [(name,)], (tenant, rows)
        conn.commit()
    try:
        conn.execute("SELECT name FROM customers")
        raise AssertionError("a statement without a tenant was not refused")
    except psycopg.errors.InsufficientPrivilege as e:
        assert "no tenant" in str(e), e
        conn.rollback()

with psycopg.connect(dsn, autocommit=True) as conn:
    for tenant, name in ((a, "a-row"), (b, "b-row"), (a, "a-row")):
        choose(conn, tenant, local=False)
        for _ in range(8):
            row = conn.execute("SELECT name FROM customers WHERE id = %s", (1,)).fetchone()
            assert row == (name,), (tenant, row)
    conn.execute("RESET bulkhead.tenant")
    try:
        conn.execute("SELECT name FROM customers WHERE id = %s", (1,))
        raise AssertionError("RESET did not clear the session's tenant")
    except psycopg.errors.InsufficientPrivilege:
        pass
print("ok")
