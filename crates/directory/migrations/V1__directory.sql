-- The tenant directory: where every tenant of every service lives.
CREATE TABLE directory.clusters (
    name        text PRIMARY KEY,
    region      text NOT NULL,
    admin_dsn   text NOT NULL,
    capacity    integer CHECK (capacity IS NULL OR capacity > 0),
    server_version text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE directory.services (
    name          text PRIMARY KEY,
    default_mode  text NOT NULL CHECK (default_mode IN ('shared', 'schema', 'database')),
    tier_modes    jsonb NOT NULL DEFAULT '{}'::jsonb,
    cluster       text NOT NULL REFERENCES directory.clusters (name) ON DELETE RESTRICT,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE directory.tenants (
    id          uuid PRIMARY KEY,
    slug        text NOT NULL UNIQUE,
    tier        text NOT NULL,
    region      text,
    state       text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'suspended')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE directory.placements (
    service         text NOT NULL REFERENCES directory.services (name) ON DELETE RESTRICT,
    tenant_id       uuid NOT NULL REFERENCES directory.tenants (id) ON DELETE RESTRICT,
    mode            text NOT NULL CHECK (mode IN ('shared', 'schema', 'database')),
    cluster         text NOT NULL REFERENCES directory.clusters (name) ON DELETE RESTRICT,
    database_name   text NOT NULL,
    schema_name     text,
    role_name       text NOT NULL,
    schema_version  bigint NOT NULL DEFAULT 0,
    state           text NOT NULL CHECK (state IN ('provisioning', 'active', 'moving', 'suspended', 'deleting', 'deleted', 'failed')),
    epoch           bigint NOT NULL DEFAULT 1,
    reason          text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service, tenant_id)
);
CREATE INDEX placements_by_tenant ON directory.placements (tenant_id);
CREATE INDEX placements_by_cluster ON directory.placements (cluster);

-- Gateways cache placements and tenants; they learn of every change on this channel.
CREATE FUNCTION directory.notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
    IF TG_TABLE_NAME = 'tenants' THEN
        PERFORM pg_notify('bulkhead_directory', json_build_object('table', TG_TABLE_NAME, 'tenant_id', r.id)::text);
    ELSIF TG_TABLE_NAME = 'placements' THEN
        PERFORM pg_notify('bulkhead_directory', json_build_object('table', TG_TABLE_NAME, 'tenant_id', r.tenant_id, 'service', r.service)::text);
    ELSE
        PERFORM pg_notify('bulkhead_directory', json_build_object('table', TG_TABLE_NAME, 'name', r.name)::text);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER tenants_notify AFTER INSERT OR UPDATE OR DELETE ON directory.tenants
    FOR EACH ROW EXECUTE FUNCTION directory.notify_change();
CREATE TRIGGER placements_notify AFTER INSERT OR UPDATE OR DELETE ON directory.placements
    FOR EACH ROW EXECUTE FUNCTION directory.notify_change();
CREATE TRIGGER services_notify AFTER INSERT OR UPDATE OR DELETE ON directory.services
    FOR EACH ROW EXECUTE FUNCTION directory.notify_change();
CREATE TRIGGER clusters_notify AFTER INSERT OR UPDATE OR DELETE ON directory.clusters
    FOR EACH ROW EXECUTE FUNCTION directory.notify_change();
