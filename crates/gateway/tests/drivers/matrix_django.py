"""Django's ORM through the gateway, for the driver matrix: Django's own connection setup
(USE_TZ, so it sets the connection's TimeZone to UTC), a `managed = False` model over the
table Bulkhead's migrations made (schema changes go through `bulkhead migrate`, not Django
migrations, on a tenant login), transaction.atomic with a rollback, types round trip, each
tenant sees only its rows; then the same tenants through a service login, each
transaction.atomic block choosing its tenant with SET LOCAL bulkhead.tenant.
Usage: matrix_django.py HOST PORT DBNAME KEY... with MATRIX_SERVICE_USER,
MATRIX_SERVICE_PASSWORD and MATRIX_TENANTS (the keys' tenants, in order)."""
import datetime
import os
import sys

import django
from django.conf import settings

host, port, db, keys = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
settings.configure(
    USE_TZ=True,
    TIME_ZONE="UTC",
    INSTALLED_APPS=[],
    DATABASES={
        f"t{n}": {"ENGINE": "django.db.backends.postgresql", "HOST": host, "PORT": port,
                  "NAME": db, "USER": "app", "PASSWORD": key, "CONN_MAX_AGE": 60}
        for n, key in enumerate(keys)
    } | {
        "default": {},
        "svc": {"ENGINE": "django.db.backends.postgresql", "HOST": host, "PORT": port,
                "NAME": db, "USER": os.environ["MATRIX_SERVICE_USER"],
                "PASSWORD": os.environ["MATRIX_SERVICE_PASSWORD"], "CONN_MAX_AGE": 60},
    },
)
django.setup()

from django.db import connections, models, transaction  # noqa: E402


class Customer(models.Model):
    id = models.IntegerField(primary_key=True)
    name = models.TextField()

    class Meta:
        app_label = "matrix"
        db_table = "customers"
        managed = False


for n in range(len(keys)):
    alias = f"t{n}"
    Customer.objects.using(alias).create(id=n, name=f"mine-{n}")
    try:
        with transaction.atomic(using=alias):
            Customer.objects.using(alias).create(id=500, name="rolled back")
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    with transaction.atomic(using=alias):
        Customer.objects.using(alias).filter(id=n).update(name=f"mine-{n}!")
    names = list(Customer.objects.using(alias).values_list("name", flat=True))
    assert names == [f"mine-{n}!"], names
    with connections[alias].cursor() as cur:
        cur.execute("SHOW TimeZone")
        assert cur.fetchone()[0] == "UTC"
        cur.execute("SELECT %s::timestamptz, %s::numeric, %s::jsonb, %s::text",
                    [datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc), "1.5", '{"a": 1}', None])
        row = cur.fetchone()
        assert row[0] == datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc), row
        assert str(row[1]) == "1.5" and row[3] is None, row
    Customer.objects.using(alias).all().delete()
    connections[alias].close()


class tenant_scope(transaction.Atomic):
    """transaction.atomic on the service login that first names the tenant (Django binds
    parameters on the client, so the slug reaches SET as a quoted literal)."""

    def __init__(self, tenant):
        super().__init__("svc", savepoint=True, durable=False)
        self.tenant = tenant

    def __enter__(self):
        super().__enter__()
        with connections["svc"].cursor() as cur:
            cur.execute("SET LOCAL bulkhead.tenant = %s", [self.tenant])


from django.db import DatabaseError  # noqa: E402

tenants = os.environ["MATRIX_TENANTS"].split()
for tenant in tenants:
    with tenant_scope(tenant):
        Customer.objects.using("svc").create(id=900, name=f"svc-{tenant}")
for tenant in tenants:
    with tenant_scope(tenant):
        names = list(Customer.objects.using("svc").filter(name__startswith="svc-")
                     .values_list("name", flat=True))
        assert names == [f"svc-{tenant}"], (tenant, names)
        Customer.objects.using("svc").filter(id=900).delete()
try:
    list(Customer.objects.using("svc").all())
    raise AssertionError("a statement with no tenant chosen was not refused")
except DatabaseError as e:
    assert "no tenant" in str(e), e
connections["svc"].close()
print("ok")
