-- A tenant's new transactions wait at the gateway while this is set (a move's cutover).
ALTER TABLE directory.placements ADD COLUMN held_at timestamptz;

-- Online moves of a tenant between modes and clusters. The row is the move's state: a
-- mover that stops at any phase resumes from it (or rolls it back) on the next run.
CREATE TABLE directory.moves (
    id              uuid PRIMARY KEY,
    service         text NOT NULL REFERENCES directory.services (name) ON DELETE CASCADE,
    tenant_id       uuid NOT NULL REFERENCES directory.tenants (id) ON DELETE CASCADE,
    from_mode       text NOT NULL CHECK (from_mode IN ('shared', 'schema', 'database')),
    from_cluster    text NOT NULL,
    to_mode         text NOT NULL CHECK (to_mode IN ('shared', 'schema', 'database')),
    to_cluster      text NOT NULL,
    version         bigint NOT NULL,
    phase           text NOT NULL CHECK (phase IN ('planned', 'provisioned', 'copying', 'copied',
                        'cutover', 'switched', 'finalized', 'aborted', 'rolled_back')),
    -- The logical replication slot and publication on the source, and where the slot started.
    slot_name       text NOT NULL,
    publication     text NOT NULL,
    start_lsn       pg_lsn,
    tables_copied   text[] NOT NULL DEFAULT '{}',
    rows_copied     bigint NOT NULL DEFAULT 0,
    -- A rollback is a move back into the kept source of the move it rolls back.
    rollback_of     uuid REFERENCES directory.moves (id) ON DELETE SET NULL,
    error           text,
    parity          jsonb,
    pause_ms        bigint,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    switched_at     timestamptz,
    finished_at     timestamptz
);
-- At most one move of a tenant in a service is under way (before its switch).
CREATE UNIQUE INDEX moves_one_open ON directory.moves (service, tenant_id)
    WHERE phase IN ('planned', 'provisioned', 'copying', 'copied', 'cutover');
CREATE INDEX moves_by_tenant ON directory.moves (tenant_id, created_at);
