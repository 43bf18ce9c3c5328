-- The audit log: append-only, one hash chain per tenant (`chain` is the tenant id, or
-- `global` for events of no tenant). Each entry's hash covers the previous entry's hash and
-- the entry's canonical bytes; its MAC is HMAC-SHA256 of the hash under a per-chain key
-- derived from the master key. `id` is the storage order; `n` the entry's number in its
-- chain (covered by the hash); `event_id` the event's own id (covered too), so that a
-- writer retrying an append whose COMMIT reply was lost does not record it twice.
CREATE SCHEMA audit;
REVOKE ALL ON SCHEMA audit FROM PUBLIC;

CREATE TABLE audit.events (
    id         bigserial PRIMARY KEY,
    event_id   uuid NOT NULL UNIQUE,
    chain      text NOT NULL,
    n          bigint NOT NULL CHECK (n >= 1),
    tenant_id  uuid,
    actor      text NOT NULL,
    action     text NOT NULL,
    details    jsonb NOT NULL,
    at         timestamptz NOT NULL,
    prev_hash  bytea NOT NULL,
    hash       bytea NOT NULL,
    mac        bytea NOT NULL,
    UNIQUE (chain, n)
);
CREATE INDEX events_tenant_at ON audit.events (tenant_id, at);
REVOKE ALL ON audit.events FROM PUBLIC;

-- The newest entry of each chain, MACed: a cut-off tail shows as a head past the last entry.
CREATE TABLE audit.heads (
    chain  text PRIMARY KEY,
    n      bigint NOT NULL,
    hash   bytea NOT NULL,
    mac    bytea NOT NULL
);
REVOKE ALL ON audit.heads FROM PUBLIC;

-- Entries are never changed or removed, by anyone the trigger binds (a superuser can switch
-- triggers off: that is what the chain and the MACs are for).
CREATE FUNCTION audit.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % is refused', TG_OP
        USING ERRCODE = '42501';
END
$fn$;
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON audit.events
    FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON audit.events
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();

-- Metering. Every usage event (a gateway flush's count for one tenant and metric, or an
-- application's `bulkhead.usage()` call) has a stable idempotency key; the rollup per hour is
-- added to only for events newly inserted, in the same transaction, so a retried flush never
-- counts twice.
CREATE SCHEMA metering;
REVOKE ALL ON SCHEMA metering FROM PUBLIC;

CREATE TABLE metering.usage_events (
    idempotency_key  text PRIMARY KEY,
    tenant_id        uuid NOT NULL,
    metric           text NOT NULL,
    quantity         bigint NOT NULL CHECK (quantity >= 0),
    at               timestamptz NOT NULL,
    source           text NOT NULL CHECK (source IN ('gateway', 'app'))
);
CREATE INDEX usage_events_at ON metering.usage_events (at);

CREATE TABLE metering.usage_hourly (
    tenant_id  uuid NOT NULL,
    metric     text NOT NULL,
    hour       timestamptz NOT NULL,
    quantity   bigint NOT NULL,
    PRIMARY KEY (tenant_id, metric, hour)
);
CREATE INDEX usage_hourly_hour ON metering.usage_hourly (hour);
REVOKE ALL ON metering.usage_events, metering.usage_hourly FROM PUBLIC;
