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

-- Signed tenant contexts. All shared tenants of a pool database run under one role (the
-- service's runtime group): switching PostgreSQL 15's current role per transaction makes it
-- rebuild the role's membership list on the next privilege check, a walk over every cached
-- role's list (most of the server's time with a thousand tenants). Instead the gateway sets
-- `bulkhead.tenant_mac`, HMAC-SHA-256 under this database's key of "<tenant id>:<backend
-- pid>", beside `bulkhead.tenant_id`; current_tenant() accepts the context of that role only
-- with a valid MAC. The key is readable by the gateway's login and the owner, never by a
-- tenant's role; the MAC names the backend process, so one seen in one session is worthless
-- in another. `ipad` and `opad` are the key XOR HMAC's pads (64 bytes each), precomputed.
CREATE TABLE IF NOT EXISTS bulkhead.context_key (
    role_oid  pg_catalog.oid PRIMARY KEY,
    key       pg_catalog.bytea NOT NULL,
    ipad      pg_catalog.bytea NOT NULL,
    opad      pg_catalog.bytea NOT NULL
);
REVOKE ALL ON bulkhead.context_key FROM PUBLIC;

-- Whether `mac` is this database's MAC of `tenant` for this backend, with `who` a role
-- whose contexts are signed. Answers only yes or no: it is an oracle for a 256-bit key.
-- Qualified names throughout, and search_path pinned too (SECURITY DEFINER: the caller's
-- search_path must not matter; `verify` requires the pin).
-- PL/pgSQL rather than SQL: its query plan is kept for the session, where a SQL function's
-- is made again on every call.
CREATE OR REPLACE FUNCTION bulkhead.context_valid(who pg_catalog.text, tenant pg_catalog.text, mac pg_catalog.text)
RETURNS pg_catalog.bool
LANGUAGE plpgsql STABLE SECURITY DEFINER PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    k bulkhead.context_key;
BEGIN
    SELECT * INTO k FROM bulkhead.context_key c
     WHERE c.role_oid OPERATOR(pg_catalog.=) pg_catalog.to_regrole(pg_catalog.quote_ident(who))::pg_catalog.oid;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    RETURN pg_catalog.encode(pg_catalog.sha256(k.opad OPERATOR(pg_catalog.||) pg_catalog.sha256(
               k.ipad OPERATOR(pg_catalog.||) pg_catalog.convert_to(
                   tenant OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) pg_catalog.pg_backend_pid()::pg_catalog.text,
                   'UTF8'))), 'hex') OPERATOR(pg_catalog.=) mac;
END
$fn$;
REVOKE ALL ON FUNCTION bulkhead.context_valid(pg_catalog.text, pg_catalog.text, pg_catalog.text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION bulkhead.context_valid(pg_catalog.text, pg_catalog.text, pg_catalog.text) TO PUBLIC;

-- Makes `signer`'s contexts signed in this database (a fresh random key unless it has one)
-- and lets `reader` (the gateway's login) read the key. Bulkhead runs it as the owner.
CREATE OR REPLACE FUNCTION bulkhead.ensure_context_key(signer pg_catalog.regrole, reader pg_catalog.regrole)
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    k pg_catalog.bytea;
    i pg_catalog.bytea := pg_catalog.decode(pg_catalog.repeat('36', 64), 'hex');
    o pg_catalog.bytea := pg_catalog.decode(pg_catalog.repeat('5c', 64), 'hex');
BEGIN
    IF NOT EXISTS (SELECT 1 FROM bulkhead.context_key WHERE role_oid OPERATOR(pg_catalog.=) signer::pg_catalog.oid) THEN
        -- gen_random_uuid() draws from the server's strong random source (122 bits each).
        k := pg_catalog.sha256(pg_catalog.convert_to(
                pg_catalog.gen_random_uuid()::pg_catalog.text OPERATOR(pg_catalog.||)
                pg_catalog.gen_random_uuid()::pg_catalog.text OPERATOR(pg_catalog.||)
                pg_catalog.gen_random_uuid()::pg_catalog.text, 'UTF8'));
        FOR n IN 0..31 LOOP
            i := pg_catalog.set_byte(i, n, pg_catalog.get_byte(k, n) OPERATOR(pg_catalog.#) 54);
            o := pg_catalog.set_byte(o, n, pg_catalog.get_byte(k, n) OPERATOR(pg_catalog.#) 92);
        END LOOP;
        INSERT INTO bulkhead.context_key (role_oid, key, ipad, opad) VALUES (signer::pg_catalog.oid, k, i, o)
            ON CONFLICT (role_oid) DO NOTHING;
    END IF;
    IF NOT pg_catalog.has_table_privilege(reader::pg_catalog.oid, 'bulkhead.context_key', 'SELECT') THEN
        EXECUTE pg_catalog.format('GRANT SELECT ON bulkhead.context_key TO %I', reader::pg_catalog.text);
    END IF;
END
$fn$;
REVOKE ALL ON FUNCTION bulkhead.ensure_context_key(pg_catalog.regrole, pg_catalog.regrole) FROM PUBLIC;

-- The tenant of the current transaction. Raises unless the gateway set one; when the session
-- runs as a tenant's runtime role, the setting must name the tenant this database binds
-- that role to; when it runs as a role with signed contexts (above), the setting must carry
-- this database's MAC for this backend. Either way an attacker would have to defeat two
-- independent controls (the gateway's guard, and the role binding or the key).
-- Every name in it is qualified instead of pinning search_path with a SET clause: a SET
-- clause makes each call save and restore settings, on every statement of every tenant.
CREATE OR REPLACE FUNCTION bulkhead.current_tenant() RETURNS uuid
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED
AS $fn$
DECLARE
    setting pg_catalog.text := pg_catalog.current_setting('bulkhead.tenant_id', true);
    mac pg_catalog.text := pg_catalog.current_setting('bulkhead.tenant_mac', true);
    who pg_catalog.text := CURRENT_USER;
    bound pg_catalog.uuid;
BEGIN
    IF setting IS NULL OR setting OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION 'no tenant context: this statement reads or writes tenant data and no tenant is set'
            USING ERRCODE = '42501',
                  HINT = 'Connect through the Bulkhead gateway with a tenant token, or SET LOCAL bulkhead.tenant in the transaction.';
    END IF;
    IF mac IS NOT NULL AND mac OPERATOR(pg_catalog.<>) '' THEN
        IF bulkhead.context_valid(who, setting, mac) THEN
            RETURN setting::pg_catalog.uuid;
        END IF;
        RAISE EXCEPTION 'tenant context is not signed for this session' USING ERRCODE = '42501';
    END IF;
    IF who OPERATOR(pg_catalog.~~) 'bh\_t\_%' THEN
        SELECT m.tenant_id INTO bound FROM bulkhead.my_tenant m;
        IF bound IS NULL OR bound::pg_catalog.text OPERATOR(pg_catalog.<>) pg_catalog.lower(setting) THEN
            RAISE EXCEPTION 'tenant context does not match the session''s tenant role' USING ERRCODE = '42501';
        END IF;
    ELSIF who OPERATOR(pg_catalog.~~) 'bh\_%' THEN
        RAISE EXCEPTION 'tenant data is reachable only through a tenant''s own role or a context the gateway signed, not %', who
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

