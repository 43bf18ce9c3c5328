-- Service logins: an application server connects with a SCRAM-SHA-256 credential of its
-- service and names the tenant per transaction. Only the SCRAM verifier is stored (the
-- same form PostgreSQL keeps in pg_authid); the password is shown once.
CREATE TABLE directory.service_credentials (
    service     text NOT NULL REFERENCES directory.services (name) ON DELETE CASCADE,
    username    text NOT NULL CHECK (username ~ '^[a-z][a-z0-9_]{0,62}$'),
    verifier    text NOT NULL CHECK (verifier LIKE 'SCRAM-SHA-256$%'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    PRIMARY KEY (service, username)
);

CREATE TRIGGER service_credentials_notify AFTER INSERT OR UPDATE OR DELETE ON directory.service_credentials
    FOR EACH ROW EXECUTE FUNCTION directory.notify_change();

CREATE OR REPLACE FUNCTION directory.notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
    IF TG_TABLE_NAME = 'tenants' THEN
        PERFORM pg_notify('bulkhead_directory', json_build_object('table', TG_TABLE_NAME, 'tenant_id', r.id)::text);
    ELSIF TG_TABLE_NAME IN ('placements', 'tenant_keys') THEN
        PERFORM pg_notify('bulkhead_directory', json_build_object('table', TG_TABLE_NAME, 'tenant_id', r.tenant_id)::text);
    ELSIF TG_TABLE_NAME = 'service_credentials' THEN
        PERFORM pg_notify('bulkhead_directory', json_build_object('table', TG_TABLE_NAME, 'service', r.service)::text);
    ELSE
        PERFORM pg_notify('bulkhead_directory', json_build_object('table', TG_TABLE_NAME, 'name', r.name)::text);
    END IF;
    RETURN NULL;
END $$;
