//! The guard's rules that depend on who the session is and which tenant the transaction acts
//! for: the guard records what a statement does (`Checked`), the session judges it here,
//! before anything of the unit reaches a backend.
//!
//! - DDL only from a service credential with the migration capability.
//! - NOTIFY (and `pg_notify`) only on the tenant's own channels: `t_<tenant id, 32 hex
//!   digits>` or a name that starts with it and `_`.
//! - On the catalog route (a transaction that began before any tenant was chosen), only
//!   statements that read the catalogs.

use bulkhead_wire::SqlState;

use super::Session;
use crate::auth::Identity;
use crate::guard::{Checked, Refusal};

impl Session {
    /// Why the statements of `c` may not run in this session now, if they may not.
    pub(super) fn judge(&self, c: &Checked) -> Result<(), Refusal> {
        let on_catalog_route =
            self.backend.is_some() && self.route.as_ref().is_some_and(|r| r.tenant.is_none());
        if on_catalog_route && !c.tenant_free {
            // A transaction that began with catalog reads before any tenant was chosen.
            return Err(super::context::refusal_of(super::context::no_tenant()));
        }
        if c.ddl && !matches!(self.ctx.identity(), Identity::Service { may_ddl: true, .. }) {
            return Err(Refusal {
                code: SqlState::InsufficientPrivilege,
                rule: "ddl",
                message: "DDL is refused for tenant sessions: schema changes go through `bulkhead migrate`, or a service credential created with --allow-ddl".into(),
            });
        }
        if let (false, Some(tenant)) = (c.notify.is_empty(), self.ctx.tenant()) {
            let own = format!("t_{}", tenant.simple());
            for channel in &c.notify {
                let ok = channel
                    .strip_prefix(&own)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('_'));
                if !ok {
                    return Err(Refusal {
                        code: SqlState::InsufficientPrivilege,
                        rule: "notify_channel",
                        message: format!("NOTIFY through the gateway is allowed only on this tenant's channels: {own} or {own}_<name>"),
                    });
                }
            }
        }
        Ok(())
    }
}
