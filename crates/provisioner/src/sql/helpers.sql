-- Bulkhead's SQL helpers, installed in every pool database, template and tenant database.
CREATE SCHEMA IF NOT EXISTS bulkhead;
REVOKE ALL ON SCHEMA bulkhead FROM PUBLIC;
GRANT USAGE ON SCHEMA bulkhead TO PUBLIC;

-- The tenant of the current transaction. Raises unless the gateway set one; when the session
-- runs as a tenant's runtime role, the setting must name that role's tenant, so an attacker
-- would have to defeat two independent controls (the setting and the role).
CREATE OR REPLACE FUNCTION bulkhead.current_tenant() RETURNS uuid
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog
AS $fn$
DECLARE
    setting text := current_setting('bulkhead.tenant_id', true);
BEGIN
    IF setting IS NULL OR setting = '' THEN
        RAISE EXCEPTION 'no tenant context: this statement reads or writes tenant data and no tenant is set'
            USING ERRCODE = '42501',
                  HINT = 'Connect through the Bulkhead gateway with a tenant token, or SET LOCAL bulkhead.tenant in the transaction.';
    END IF;
    IF current_user LIKE 'bh\_t\_%' THEN
        IF substr(current_user, 6, 32) <> replace(lower(setting), '-', '') THEN
            RAISE EXCEPTION 'tenant context does not match the session''s tenant role' USING ERRCODE = '42501';
        END IF;
    ELSIF current_user LIKE 'bh\_%' THEN
        RAISE EXCEPTION 'tenant data is reachable only through a tenant''s own role, not %', current_user
            USING ERRCODE = '42501';
    END IF;
    RETURN setting::uuid;
END
$fn$;
REVOKE ALL ON FUNCTION bulkhead.current_tenant() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION bulkhead.current_tenant() TO PUBLIC;

-- Which migrations each target in this database has applied (`shared` for the pool's shared
-- tables, the schema name for a schema tenant, `database` for a template or tenant database).
CREATE TABLE IF NOT EXISTS bulkhead.applied_migrations (
    target      text NOT NULL,
    version     bigint NOT NULL,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (target, version)
);
REVOKE ALL ON bulkhead.applied_migrations FROM PUBLIC;

-- Reference data: readable by every tenant, written only by migrations.
CREATE SCHEMA IF NOT EXISTS ref;
REVOKE ALL ON SCHEMA ref FROM PUBLIC;
GRANT USAGE ON SCHEMA ref TO PUBLIC;

-- Tenants get nothing by default: no CREATE or USAGE on public, no temporary tables.
REVOKE ALL ON SCHEMA public FROM PUBLIC;
