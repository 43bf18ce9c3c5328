"""SQLAlchemy 2 ORM on psycopg2 through the gateway, for the driver matrix: a pool with
pre-ping and reset on return, ORM inserts and queries, inspect(), types round trip, each
tenant sees only its rows, and two engines with their own TimeZone (connect_args options)
interleaved on a pool of one; then the same tenants through a service login's engine, the
tenant set by a Session "after_begin" hook with SET LOCAL bulkhead.tenant (SQLAlchemy's
usual multi-tenant idiom). Usage: matrix_sqlalchemy.py HOST PORT DBNAME KEY... with
MATRIX_SERVICE_USER, MATRIX_SERVICE_PASSWORD and MATRIX_TENANTS (the keys' tenants)."""
import datetime
import os
import sys

from sqlalchemy import create_engine, event, exc, inspect, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

host, port, db, keys = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]


def engine(key, user="app", **kw):
    return create_engine(f"postgresql+psycopg2://{user}:{key}@{host}:{port}/{db}",
                         pool_pre_ping=True, pool_size=2, **kw)


for n, key in enumerate(keys):
    e = engine(key)
    assert "customers" in inspect(e).get_table_names(), inspect(e).get_table_names()
    with Session(e) as s:
        s.add_all([Customer(id=n, name=f"mine-{n}"), Customer(id=100 + n, name="second")])
        s.commit()
    for _ in range(5):
        with Session(e) as s:
            names = sorted(c.name for c in s.scalars(select(Customer)))
            assert names == sorted([f"mine-{n}", "second"]), names
    with e.connect() as c:
        row = c.execute(text("SELECT CAST(:a AS int), CAST(:b AS numeric), CAST(:c AS jsonb),"
                             " CAST(:d AS bytea), CAST(:e AS timestamptz), CAST(:f AS text)"),
                        {"a": 7, "b": "1.5", "c": '{"k": 1}', "d": b"\x01", "e": "2020-01-01T00:00:00+00:00", "f": None}).one()
        assert row[0] == 7 and str(row[1]) == "1.5" and row[2] == {"k": 1} and bytes(row[3]) == b"\x01", row
        assert row[4] == datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc) and row[5] is None, row
    with Session(e) as s:
        s.query(Customer).delete()
        s.commit()
    e.dispose()

a = engine(keys[0], connect_args={"options": "-c TimeZone=America/New_York"})
b = engine(keys[-1], connect_args={"options": "-c TimeZone=Asia/Tokyo"})
for _ in range(3):
    # One at a time: a pool of one serves one transaction at once.
    with a.connect() as ca:
        assert ca.execute(text("SHOW TimeZone")).scalar() == "America/New_York"
    with b.connect() as cb:
        assert cb.execute(text("SHOW TimeZone")).scalar() == "Asia/Tokyo"
a.dispose()
b.dispose()

svc = engine(os.environ["MATRIX_SERVICE_PASSWORD"], user=os.environ["MATRIX_SERVICE_USER"])


@event.listens_for(Session, "after_begin")
def choose_tenant(session, transaction, connection):
    if "tenant" in session.info:
        # psycopg2 binds on the client, so the slug reaches SET as a quoted literal.
        connection.execute(text("SET LOCAL bulkhead.tenant = :t"), {"t": session.info["tenant"]})


tenants = os.environ["MATRIX_TENANTS"].split()
for tenant in tenants:
    with Session(svc, info={"tenant": tenant}) as s:
        s.add(Customer(id=900, name=f"svc-{tenant}"))
        s.commit()
for _ in range(2):
    for tenant in tenants:
        with Session(svc, info={"tenant": tenant}) as s:
            names = [c.name for c in s.scalars(select(Customer).where(Customer.name.like("svc-%")))]
            assert names == [f"svc-{tenant}"], (tenant, names)
for tenant in tenants:
    with Session(svc, info={"tenant": tenant}) as s:
        s.query(Customer).filter(Customer.id == 900).delete()
        s.commit()
try:
    with Session(svc) as s:
        s.scalars(select(Customer)).all()
    raise AssertionError("a statement with no tenant chosen was not refused")
except exc.DBAPIError as e:
    assert e.orig.pgcode == "42501" and "no tenant" in str(e), e
svc.dispose()
print("ok")
