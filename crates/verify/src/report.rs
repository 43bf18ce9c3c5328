//! The report: per check, how many objects it looked at and what it found.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

/// One check of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// Shared tables with `tenant_id` have RLS enabled and forced.
    ForcedRls,
    /// ... with Bulkhead's policy.
    BulkheadPolicy,
    /// ... and no other permissive policy widening it.
    NoWideningPolicy,
    /// Shared tables without `tenant_id` are listed reference data.
    TenantColumn,
    /// Bulkhead's roles are not superuser and cannot bypass RLS.
    RoleAttributes,
    /// Tenant roles own no shared table.
    RoleOwnership,
    /// Tenant roles are not members of one another.
    RoleMembership,
    /// Schema tenants' roles have USAGE on no other tenant's schema.
    SchemaUsage,
    /// Tenant roles cannot CREATE in `public`.
    PublicCreate,
    /// Tenant databases are not open to PUBLIC.
    DatabaseConnect,
    /// Views tenants can read run with the invoker's rights.
    InvokerViews,
    /// SECURITY DEFINER functions tenants can call are allow-listed and pin search_path.
    DefinerFunctions,
    /// The usage outbox: RLS with Bulkhead's insert-only policy, INSERT the only privilege.
    UsageOutbox,
    /// Indexes of shared tables lead with `tenant_id` (warning).
    IndexesLeadWithTenant,
    /// Sequences shared by every tenant of a table (warning).
    SharedSequences,
    /// Names every role can read (roles, schemas, databases, sessions' application_name,
    /// replication slots, publications) embed no tenant id.
    OpaqueNames,
    /// Every tenant role is bound to its own tenant in the database it serves (what
    /// `bulkhead.current_tenant()` checks the tenant setting against).
    RoleBindings,
    /// The signed-context key is readable by the gateway's login (and the owner) only.
    ContextKey,
}

impl Check {
    /// Its name in the report.
    pub fn name(&self) -> &'static str {
        match self {
            Check::ForcedRls => "shared tables under forced RLS",
            Check::BulkheadPolicy => "shared tables carry Bulkhead's policy",
            Check::NoWideningPolicy => "no other permissive policy",
            Check::TenantColumn => "shared tables have tenant_id or are reference data",
            Check::RoleAttributes => "roles: no superuser, no BYPASSRLS",
            Check::RoleOwnership => "tenant roles own no shared table",
            Check::RoleMembership => "tenant roles not members of one another",
            Check::SchemaUsage => "no USAGE on other tenants' schemas",
            Check::PublicCreate => "no CREATE on public",
            Check::DatabaseConnect => "tenant databases: CONNECT revoked from PUBLIC",
            Check::InvokerViews => "views readable by tenants are security_invoker",
            Check::DefinerFunctions => "SECURITY DEFINER functions allow-listed and pinned",
            Check::UsageOutbox => "usage outbox: insert-only, own tenant id",
            Check::IndexesLeadWithTenant => "shared indexes lead with tenant_id",
            Check::SharedSequences => "no sequence shared across tenants",
            Check::OpaqueNames => "catalog names reveal no tenant id",
            Check::RoleBindings => "tenant roles bound to their own tenant",
            Check::ContextKey => "context key readable by the gateway's login only",
        }
    }
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Isolation is not guaranteed: `verify` exits non-zero.
    Fail,
    /// Worth fixing; isolation holds.
    Warn,
}

/// Something a check found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finding {
    /// How bad.
    pub level: Level,
    /// Which check.
    pub check: Check,
    /// `cluster/database` (or the cluster).
    pub target: String,
    /// The object.
    pub object: String,
    /// What is wrong and what to do.
    pub detail: String,
}

/// Everything `verify` found.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Report {
    /// Services verified.
    pub services: usize,
    /// Objects each check looked at.
    pub checked: BTreeMap<Check, usize>,
    /// What the checks found.
    pub findings: Vec<Finding>,
}

impl Report {
    pub(crate) fn looked_at(&mut self, check: Check, n: usize) {
        *self.checked.entry(check).or_default() += n;
    }

    pub(crate) fn found(
        &mut self,
        level: Level,
        check: Check,
        target: &str,
        object: impl Into<String>,
        detail: impl Into<String>,
    ) {
        self.findings.push(Finding {
            level,
            check,
            target: target.to_string(),
            object: object.into(),
            detail: detail.into(),
        });
    }

    /// Failures found.
    pub fn failures(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.level == Level::Fail)
            .count()
    }

    /// The coverage table, then every finding, as markdown.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "| check | objects checked | failures | warnings |");
        let _ = writeln!(out, "|---|---|---|---|");
        let all = [
            Check::ForcedRls,
            Check::BulkheadPolicy,
            Check::NoWideningPolicy,
            Check::TenantColumn,
            Check::RoleAttributes,
            Check::RoleOwnership,
            Check::RoleMembership,
            Check::SchemaUsage,
            Check::PublicCreate,
            Check::DatabaseConnect,
            Check::InvokerViews,
            Check::DefinerFunctions,
            Check::UsageOutbox,
            Check::IndexesLeadWithTenant,
            Check::SharedSequences,
            Check::OpaqueNames,
            Check::RoleBindings,
            Check::ContextKey,
        ];
        for check in all {
            let count = |level| {
                self.findings
                    .iter()
                    .filter(|f| f.check == check && f.level == level)
                    .count()
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                check.name(),
                self.checked.get(&check).copied().unwrap_or(0),
                count(Level::Fail),
                count(Level::Warn)
            );
        }
        if !self.findings.is_empty() {
            let _ = writeln!(out);
            let _ = writeln!(out, "| level | check | where | object | detail |");
            let _ = writeln!(out, "|---|---|---|---|---|");
            for f in &self.findings {
                let level = match f.level {
                    Level::Fail => "FAIL",
                    Level::Warn => "warn",
                };
                let _ = writeln!(
                    out,
                    "| {level} | {} | {} | {} | {} |",
                    f.check.name(),
                    f.target,
                    f.object,
                    f.detail
                );
            }
        }
        let _ = writeln!(
            out,
            "\n{} service(s): {} failure(s), {} warning(s)",
            self.services,
            self.failures(),
            self.findings.len() - self.failures()
        );
        out
    }
}
