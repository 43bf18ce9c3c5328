-- The probe's own tables: rows it writes as each throwaway tenant and then attacks.
CREATE TABLE probe_rows (
    tenant_id uuid NOT NULL DEFAULT bulkhead.current_tenant(),
    id int NOT NULL,
    secret text NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE TABLE probe_children (
    tenant_id uuid NOT NULL DEFAULT bulkhead.current_tenant(),
    id int NOT NULL,
    parent int NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, parent) REFERENCES probe_rows (tenant_id, id)
);
CREATE FUNCTION probe_secrets() RETURNS SETOF text LANGUAGE sql STABLE AS 'SELECT secret FROM probe_rows';
-- Sets a setting from inside a function body, where the gateway's guard cannot see it: an
-- application's own helper an attacker could call. The database's own check must hold.
CREATE FUNCTION probe_set(name text, value text) RETURNS text LANGUAGE sql VOLATILE
    AS 'SELECT set_config(name, value, true)';
