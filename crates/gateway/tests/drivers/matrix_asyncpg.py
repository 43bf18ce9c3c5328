"""asyncpg through the gateway, for the driver matrix: its Pool (type introspection, the
prepared statement cache, its reset on release), jsonb and array codecs, types round trip,
each tenant sees only its rows, and two connections whose server_settings give each its own
TimeZone, interleaved on a pool of one; then the same tenants through a service login's
Pool, each transaction choosing its tenant with SET LOCAL bulkhead.tenant.
Usage: matrix_asyncpg.py HOST PORT DBNAME KEY... with MATRIX_SERVICE_USER,
MATRIX_SERVICE_PASSWORD and MATRIX_TENANTS (the keys' tenants, in order)."""
import asyncio
import datetime
import decimal
import json
import os
import sys
import uuid

import asyncpg

host, port, db, keys = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]


async def main():
    for n, key in enumerate(keys):
        pool = await asyncpg.create_pool(host=host, port=port, database=db, user="app",
                                         password=key, min_size=1, max_size=2)
        async with pool.acquire() as c:
            await c.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
            row = await c.fetchrow(
                "SELECT $1::int, $2::bigint, $3::numeric, $4::text, $5::bool, $6::timestamptz,"
                " $7::uuid, $8::jsonb, $9::bytea, $10::int[], $11::text",
                7, 2**40, decimal.Decimal("12.345"), "tëxt", True,
                datetime.datetime(2020, 1, 2, tzinfo=datetime.timezone.utc),
                uuid.UUID(int=5), {"a": [1]}, b"\x00\xff", [1, 2], None)
            assert list(row) == [7, 2**40, decimal.Decimal("12.345"), "tëxt", True,
                                 datetime.datetime(2020, 1, 2, tzinfo=datetime.timezone.utc),
                                 uuid.UUID(int=5), {"a": [1]}, b"\x00\xff", [1, 2], None], row
            await c.execute("INSERT INTO customers (id, name) VALUES ($1, $2)", n, f"mine-{n}")
        for i in range(20):  # the statement cache, across acquire/release (and its reset)
            async with pool.acquire() as c:
                names = [r["name"] for r in await c.fetch("SELECT name FROM customers")]
                assert names == [f"mine-{n}"], names
        async with pool.acquire() as c:
            async with c.transaction():
                await c.executemany("INSERT INTO customers (id, name) VALUES ($1, $2)",
                                    [(100 + i, f"m{i}") for i in range(10)])
            assert await c.fetchval("SELECT count(*) FROM customers") == 11
            await c.execute("DELETE FROM customers")
        await pool.close()
    a = await asyncpg.connect(host=host, port=port, database=db, user="app", password=keys[0],
                              server_settings={"TimeZone": "America/New_York"})
    b = await asyncpg.connect(host=host, port=port, database=db, user="app", password=keys[-1],
                              server_settings={"TimeZone": "Asia/Tokyo"})
    for _ in range(3):
        assert await a.fetchval("SHOW TimeZone") == "America/New_York"
        assert await b.fetchval("SHOW TimeZone") == "Asia/Tokyo"
        assert await a.fetchval("SELECT '2020-01-01 00:00+00'::timestamptz::text") == "2019-12-31 19:00:00-05"
    await a.close()
    await b.close()
    await service_login()
    print("ok")


def literal(s):
    return "'" + s.replace("'", "''") + "'"


async def service_login():
    """One Pool for every tenant: each transaction names its tenant (SET takes no
    parameters: a literal), and the statement cache holds across tenants and releases."""
    pool = await asyncpg.create_pool(host=host, port=port, database=db,
                                     user=os.environ["MATRIX_SERVICE_USER"],
                                     password=os.environ["MATRIX_SERVICE_PASSWORD"],
                                     min_size=1, max_size=2)
    tenants = os.environ["MATRIX_TENANTS"].split()
    for tenant in tenants:
        async with pool.acquire() as c:
            async with c.transaction():
                await c.execute(f"SET LOCAL bulkhead.tenant = {literal(tenant)}")
                await c.execute("INSERT INTO customers (id, name) VALUES ($1, $2)", 900, f"svc-{tenant}")
                row = await c.fetchrow("SELECT $1::bigint, $2::uuid, $3::int[], $4::text",
                                       2**40, uuid.UUID(int=5), [1, 2], None)
                assert list(row) == [2**40, uuid.UUID(int=5), [1, 2], None], row
    for _ in range(3):
        for tenant in tenants:
            async with pool.acquire() as c:
                async with c.transaction():
                    await c.execute(f"SET LOCAL bulkhead.tenant = {literal(tenant)}")
                    names = [r["name"] for r in await c.fetch(
                        "SELECT name FROM customers WHERE name LIKE $1", "svc-%")]
                    assert names == [f"svc-{tenant}"], (tenant, names)
    for tenant in tenants:
        async with pool.acquire() as c:
            async with c.transaction():
                await c.execute(f"SET LOCAL bulkhead.tenant = {literal(tenant)}")
                await c.execute("DELETE FROM customers WHERE id = 900")
    async with pool.acquire() as c:
        try:
            await c.fetch("SELECT name FROM customers")
            raise AssertionError("a statement with no tenant chosen was not refused")
        except asyncpg.InsufficientPrivilegeError as e:
            assert "no tenant" in str(e), e
    await pool.close()


asyncio.run(main())
