-- The migration capability: a service credential allowed to send DDL through the gateway
-- (its tenant's PostgreSQL privileges still decide what it may create).
ALTER TABLE directory.service_credentials ADD COLUMN may_ddl boolean NOT NULL DEFAULT false;
