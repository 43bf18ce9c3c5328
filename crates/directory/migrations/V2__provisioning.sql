-- Provisioning and migration fan-out: a service's migration files, its reference tables,
-- the pool databases and templates it has on each cluster, and per-target migration errors.
ALTER TABLE directory.services ADD COLUMN reference_tables text[] NOT NULL DEFAULT '{}';

CREATE TABLE directory.service_migrations (
    service     text NOT NULL REFERENCES directory.services (name) ON DELETE CASCADE,
    version     bigint NOT NULL CHECK (version > 0),
    name        text NOT NULL,
    checksum    text NOT NULL,
    sql         text NOT NULL,
    added_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service, version)
);

-- A service's pool database (shared and schema tenants) or template (database tenants) on
-- one cluster.
CREATE TABLE directory.service_databases (
    service         text NOT NULL REFERENCES directory.services (name) ON DELETE RESTRICT,
    cluster         text NOT NULL REFERENCES directory.clusters (name) ON DELETE RESTRICT,
    kind            text NOT NULL CHECK (kind IN ('pool', 'template')),
    database_name   text NOT NULL,
    schema_version  bigint NOT NULL DEFAULT 0,
    migration_error text,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service, cluster, kind)
);

ALTER TABLE directory.placements ADD COLUMN migration_error text;
