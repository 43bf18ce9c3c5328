-- Point-in-time recovery per cluster: where its pgBackRest repository and configuration are
-- (continuous WAL archiving and base backups of the whole cluster), so a rewind of one tenant
-- knows which stanza to restore a side instance from.
CREATE TABLE directory.cluster_pitr (
    cluster     text PRIMARY KEY REFERENCES directory.clusters (name) ON DELETE CASCADE,
    -- pgBackRest's stanza (one per cluster) and its configuration file.
    stanza      text NOT NULL,
    config_path text NOT NULL,
    -- Where side instances are restored (scratch data folders, removed after each rewind).
    work_dir    text NOT NULL,
    enabled_at  timestamptz NOT NULL DEFAULT now()
);

-- Scheduled logical backups (.bhk) of tenants: which were taken, where, and when they go.
CREATE TABLE directory.scheduled_backups (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES directory.tenants (id) ON DELETE CASCADE,
    service     text NOT NULL,
    path        text NOT NULL,
    bytes       bigint NOT NULL,
    rows        bigint NOT NULL,
    taken_at    timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX scheduled_backups_by_tenant ON directory.scheduled_backups (tenant_id, taken_at);
