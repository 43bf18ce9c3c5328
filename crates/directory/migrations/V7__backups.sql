-- Per-tenant data keys, wrapped by the master key (AES-256-GCM; 12-byte nonce first).
-- Erasing a tenant destroys its key, so every backup of it becomes unreadable.
CREATE TABLE directory.data_keys (
    tenant_id    uuid PRIMARY KEY REFERENCES directory.tenants (id) ON DELETE CASCADE,
    wrapped      bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    destroyed_at timestamptz,
    CHECK ((wrapped IS NULL) = (destroyed_at IS NOT NULL))
);

-- Deletion certificates: what an erasure removed, signed (HMAC-SHA256) with a key derived
-- from the master key. Kept as the exact text that was signed.
CREATE TABLE directory.erasures (
    tenant_id   uuid PRIMARY KEY,
    slug        text NOT NULL,
    certificate text NOT NULL,
    signature   text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
