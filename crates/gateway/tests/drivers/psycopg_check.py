"""psycopg 3 through the gateway: autocommit statements past psycopg's prepare threshold (it
then uses named server-side prepared statements), a transaction block, an explicit prepare,
COPY. Usage: psycopg_check.py DSN. Prints "ok" and exits 0 when everything holds."""
import sys

import psycopg

dsn = sys.argv[1]
with psycopg.connect(dsn, autocommit=True) as conn:
    for i in range(20):
        conn.execute("INSERT INTO customers (id, name) VALUES (%s, %s)", (1000 + i, f"py-{i}"))
    n = conn.execute("SELECT count(*) FROM customers WHERE name LIKE %s", ("py-%",)).fetchone()[0]
    assert n == 20, n
    with conn.transaction():
        conn.execute("UPDATE customers SET name = name || '!' WHERE id = %s", (1000,))
    row = conn.execute("SELECT name FROM customers WHERE id = %s", (1000,)).fetchone()
    assert row[0] == "py-0!", row
    try:
        with conn.transaction():
            conn.execute("INSERT INTO customers (id, name) VALUES (%s, %s)", (3000, "rolled-back"))
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    n = conn.execute("SELECT count(*) FROM customers WHERE id = 3000").fetchone()[0]
    assert n == 0, n
    cur = conn.cursor()
    cur.execute("SELECT %s::int + 1", (41,), prepare=True)
    assert cur.fetchone()[0] == 42
    with cur.copy("COPY customers (id, name) FROM STDIN") as copy:
        for i in range(50):
            copy.write_row((2000 + i, f"copy-{i}"))
    n = conn.execute("SELECT count(*) FROM customers WHERE name LIKE 'copy-%'").fetchone()[0]
    assert n == 50, n
    try:
        conn.execute("SET ROLE postgres")
        raise AssertionError("SET ROLE was not refused")
    except psycopg.errors.InsufficientPrivilege:
        pass
print("ok")
