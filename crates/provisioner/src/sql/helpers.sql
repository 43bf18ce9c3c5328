-- Bulkhead's SQL helpers, installed in every pool database, template and tenant database.
CREATE SCHEMA IF NOT EXISTS bulkhead;
REVOKE ALL ON SCHEMA bulkhead FROM PUBLIC;
GRANT USAGE ON SCHEMA bulkhead TO PUBLIC;

-- Which tenant each runtime role of this database serves. Tenant roles have opaque names
-- (a keyed hash), so the tenant cannot be read off the name: the binding is kept here, by
-- the role's oid (a rename keeps it). No tenant may read the table: each role sees its own
-- row only, through the view below, which reads the table with its owner's rights and
-- filters on the role asking (CURRENT_USER in a view is the querying role, not the owner).
-- security_barrier: no function of the caller's sees a row before that filter.
CREATE TABLE IF NOT EXISTS bulkhead.tenant_roles (
    role_oid   pg_catalog.oid PRIMARY KEY,
    tenant_id  pg_catalog.uuid NOT NULL
);
REVOKE ALL ON bulkhead.tenant_roles FROM PUBLIC;
CREATE OR REPLACE VIEW bulkhead.my_tenant WITH (security_barrier) AS
    SELECT b.tenant_id FROM bulkhead.tenant_roles b
     WHERE b.role_oid OPERATOR(pg_catalog.=)
           pg_catalog.to_regrole(pg_catalog.quote_ident(CURRENT_USER::pg_catalog.text))::pg_catalog.oid;
REVOKE ALL ON bulkhead.my_tenant FROM PUBLIC;
GRANT SELECT ON bulkhead.my_tenant TO PUBLIC;

-- The tenant of the current transaction. Raises unless the gateway set one; when the session
-- runs as a tenant's runtime role, the setting must name the tenant this database binds
-- that role to, so an attacker would have to defeat two independent controls (the setting
-- and the role).
-- Every name in it is qualified instead of pinning search_path with a SET clause: a SET
-- clause makes each call save and restore settings, on every statement of every tenant.
CREATE OR REPLACE FUNCTION bulkhead.current_tenant() RETURNS uuid
LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $fn$
DECLARE
    setting pg_catalog.text := pg_catalog.current_setting('bulkhead.tenant_id', true);
    who pg_catalog.text := CURRENT_USER;
    bound pg_catalog.uuid;
BEGIN
    IF setting IS NULL OR setting OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION 'no tenant context: this statement reads or writes tenant data and no tenant is set'
            USING ERRCODE = '42501',
                  HINT = 'Connect through the Bulkhead gateway with a tenant token, or SET LOCAL bulkhead.tenant in the transaction.';
    END IF;
    IF who OPERATOR(pg_catalog.~~) 'bh\_t\_%' THEN
        SELECT m.tenant_id INTO bound FROM bulkhead.my_tenant m;
        IF bound IS NULL OR bound::pg_catalog.text OPERATOR(pg_catalog.<>) pg_catalog.lower(setting) THEN
            RAISE EXCEPTION 'tenant context does not match the session''s tenant role' USING ERRCODE = '42501';
        END IF;
    ELSIF who OPERATOR(pg_catalog.~~) 'bh\_%' THEN
        RAISE EXCEPTION 'tenant data is reachable only through a tenant''s own role, not %', who
            USING ERRCODE = '42501';
    END IF;
    RETURN setting::pg_catalog.uuid;
END
$fn$;
REVOKE ALL ON FUNCTION bulkhead.current_tenant() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION bulkhead.current_tenant() TO PUBLIC;

-- Advisory locks scoped to the tenant. Advisory lock keys are shared by everyone in a
-- database, and session locks outlive the transaction on a pooled connection, so the gateway
-- refuses pg_advisory_*; these take a transaction lock on the key combined with the tenant's
-- id, so tenants never contend for (or learn of) each other's keys.
CREATE OR REPLACE FUNCTION bulkhead.advisory_xact_lock(key bigint) RETURNS void
LANGUAGE sql VOLATILE
AS $fn$
SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended(bulkhead.current_tenant()::pg_catalog.text, key))
$fn$;
CREATE OR REPLACE FUNCTION bulkhead.try_advisory_xact_lock(key bigint) RETURNS boolean
LANGUAGE sql VOLATILE
AS $fn$
SELECT pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtextextended(bulkhead.current_tenant()::pg_catalog.text, key))
$fn$;
REVOKE ALL ON FUNCTION bulkhead.advisory_xact_lock(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION bulkhead.advisory_xact_lock(bigint) TO PUBLIC;
REVOKE ALL ON FUNCTION bulkhead.try_advisory_xact_lock(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION bulkhead.try_advisory_xact_lock(bigint) TO PUBLIC;

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

