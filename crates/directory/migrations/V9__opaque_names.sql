-- Slugs never take the shape of a tenant id (32 hex digits once hyphens are gone): text that
-- has it always names a tenant by id. NOT VALID: slugs written before this rule stay, are
-- reported by `bulkhead up`, and are not routed until renamed (`bulkhead tenant rename`);
-- every new or changed slug is checked.
ALTER TABLE directory.tenants ADD CONSTRAINT tenants_slug_not_id_shaped
    CHECK (replace(slug, '-', '') !~ '^[0-9a-f]{32}$') NOT VALID;

-- The installation's naming secret: tenant roles, schemas and databases are named by a keyed
-- hash of (service, tenant id) under it, so the catalogs every role can read (pg_roles,
-- pg_namespace, pg_database, pg_stat_activity) name no tenant. `naming` says which scheme
-- the objects on the clusters follow: `legacy` (names built from the tenant id, as before
-- this version) until `bulkhead up` has renamed them, `keyed` after. A new installation
-- starts keyed. The key comes from gen_random_uuid(), PostgreSQL's strong random source.
ALTER TABLE directory.installation
    ADD COLUMN naming_key bytea CHECK (length(naming_key) = 32),
    ADD COLUMN naming text CHECK (naming IN ('legacy', 'keyed')),
    ADD COLUMN renamed_at timestamptz;
UPDATE directory.installation
   SET naming_key = decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'),
       naming = CASE WHEN EXISTS (SELECT 1 FROM directory.placements)
                       OR EXISTS (SELECT 1 FROM directory.moves) THEN 'legacy' ELSE 'keyed' END;
ALTER TABLE directory.installation
    ALTER COLUMN naming_key SET NOT NULL,
    ALTER COLUMN naming SET NOT NULL;
