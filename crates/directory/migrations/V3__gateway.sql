-- The gateway: its login on every cluster, tenant API keys, and how a service's tokens are checked.

-- One row: this installation's id. Several Bulkhead installations may share a PostgreSQL
-- server; each has its own gateway role there (bh_gw_<id>), granted only its own tenants.
CREATE TABLE directory.installation (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    singleton boolean NOT NULL DEFAULT true UNIQUE CHECK (singleton)
);
INSERT INTO directory.installation DEFAULT VALUES;
ALTER TABLE directory.clusters ADD COLUMN gateway_password text;

CREATE TABLE directory.tenant_keys (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES directory.tenants (id) ON DELETE CASCADE,
    secret_hash text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX tenant_keys_by_tenant ON directory.tenant_keys (tenant_id);

-- {"hs256_secret": "...", "issuer": "...", "audience": "...", "tenant_claim": "tenant_id"}
ALTER TABLE directory.services ADD COLUMN auth jsonb NOT NULL DEFAULT '{}'::jsonb;

CREATE OR REPLACE FUNCTION directory.notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
    IF TG_TABLE_NAME = 'tenants' THEN
        PERFORM pg_notify('bulkhead_directory', json_build_object('table', TG_TABLE_NAME, 'tenant_id', r.id)::text);
    ELSIF TG_TABLE_NAME IN ('placements', 'tenant_keys') THEN
        PERFORM pg_notify('bulkhead_directory', json_build_object('table', TG_TABLE_NAME, 'tenant_id', r.tenant_id)::text);
    ELSE
        PERFORM pg_notify('bulkhead_directory', json_build_object('table', TG_TABLE_NAME, 'name', r.name)::text);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER tenant_keys_notify AFTER INSERT OR UPDATE OR DELETE ON directory.tenant_keys
    FOR EACH ROW EXECUTE FUNCTION directory.notify_change();
