-- The migration capability: a service credential allowed to send DDL through the gateway
-- (its tenant's PostgreSQL privileges still decide what it may create).
ALTER TABLE directory.service_credentials ADD COLUMN may_ddl boolean NOT NULL DEFAULT false;

-- SECURITY DEFINER functions a service's tenants may call (`schema.name`), which
-- `bulkhead verify` then accepts when they pin search_path.
ALTER TABLE directory.services ADD COLUMN allowed_definers text[] NOT NULL DEFAULT '{}';
