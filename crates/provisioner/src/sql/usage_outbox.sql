-- The usage outbox: `SELECT bulkhead.usage('emails_sent', 1, 'order-42')` records a billable
-- event inside the caller's transaction, so it commits or rolls back with the business write.
-- A tenant may only insert under its own id (the one bulkhead.current_tenant() vouches for),
-- never read, change or delete; a repeated key is dropped. Bulkhead harvests the rows into its
-- usage ledger and deletes them.
CREATE TABLE IF NOT EXISTS bulkhead.usage_outbox (
    tenant_id        uuid NOT NULL,
    metric           text NOT NULL CHECK (metric ~ '^[a-z][a-z0-9_]{0,62}$'),
    quantity         bigint NOT NULL CHECK (quantity >= 0),
    idempotency_key  text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, idempotency_key)
);
REVOKE ALL ON bulkhead.usage_outbox FROM PUBLIC;
GRANT INSERT ON bulkhead.usage_outbox TO PUBLIC;
ALTER TABLE bulkhead.usage_outbox ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS own_usage ON bulkhead.usage_outbox;
CREATE POLICY own_usage ON bulkhead.usage_outbox FOR INSERT TO PUBLIC
    WITH CHECK (tenant_id OPERATOR(pg_catalog.=) (SELECT bulkhead.current_tenant()));

CREATE OR REPLACE FUNCTION bulkhead.usage(metric text, quantity bigint, idempotency_key text)
RETURNS void LANGUAGE sql VOLATILE
AS $fn$
INSERT INTO bulkhead.usage_outbox (tenant_id, metric, quantity, idempotency_key)
VALUES (bulkhead.current_tenant(), metric, quantity, idempotency_key)
ON CONFLICT DO NOTHING
$fn$;
REVOKE ALL ON FUNCTION bulkhead.usage(text, bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION bulkhead.usage(text, bigint, text) TO PUBLIC;
