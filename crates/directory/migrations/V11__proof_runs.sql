-- The outcome of each `verify` and `probe` run, so that the console can show the latest of
-- each per service (what passed, what failed, when) after a restart.
CREATE TABLE directory.proof_runs (
    id         bigserial PRIMARY KEY,
    service    text,            -- NULL: every service
    kind       text NOT NULL CHECK (kind IN ('verify', 'probe')),
    ran_at     timestamptz NOT NULL DEFAULT now(),
    passed     boolean NOT NULL,
    summary    text NOT NULL,
    report     jsonb NOT NULL
);
CREATE INDEX proof_runs_latest ON directory.proof_runs (kind, service, ran_at DESC);

-- The console lists the fleet's moves newest first.
CREATE INDEX moves_by_time ON directory.moves (created_at DESC);
