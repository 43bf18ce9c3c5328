//! Facts of a whole cluster: Bulkhead's roles (no superuser, no BYPASSRLS; tenant roles not
//! members of one another) and database ACLs (tenant databases and templates closed to PUBLIC).

use tokio_postgres::Client;

use bulkhead_provisioner::naming::{OWNER_ROLE_PREFIX, RUNTIME_ROLE_PREFIX};

use crate::report::{Check, Level};
use crate::tenants::KnownTenants;
use crate::Report;

const ROLES: &str = "
SELECT rolname, rolsuper, rolbypassrls, rolcanlogin, rolcreaterole, rolcreatedb
  FROM pg_roles WHERE rolname LIKE 'bh\\_%' ORDER BY rolname";

const MEMBERS: &str = "
SELECT g.rolname AS grp, m.rolname AS member
  FROM pg_auth_members am
  JOIN pg_roles g ON g.oid = am.roleid
  JOIN pg_roles m ON m.oid = am.member
 WHERE (g.rolname LIKE 'bh\\_t\\_%' OR g.rolname LIKE 'bh\\_o\\_%')
   AND (m.rolname LIKE 'bh\\_t\\_%' OR m.rolname LIKE 'bh\\_o\\_%')";

const DATABASES: &str = "
SELECT datname,
       EXISTS (SELECT 1 FROM aclexplode(coalesce(datacl, acldefault('d', datdba))) a
                WHERE a.grantee = 0 AND a.privilege_type = 'CONNECT') AS public_connect
  FROM pg_database
 WHERE datname LIKE 't\\_%' OR datname LIKE 'bh\\_%'";

pub(crate) async fn cluster(
    client: &Client,
    target: &str,
    known: &KnownTenants,
    report: &mut Report,
) -> Result<(), tokio_postgres::Error> {
    let roles = client.query(ROLES, &[]).await?;
    report.looked_at(Check::RoleAttributes, roles.len());
    let mut tenant_roles = 0;
    for r in &roles {
        let name: String = r.get("rolname");
        let tenant = name.starts_with(RUNTIME_ROLE_PREFIX) || name.starts_with(OWNER_ROLE_PREFIX);
        tenant_roles += usize::from(tenant);
        let mut wrong = Vec::new();
        if r.get::<_, bool>("rolsuper") {
            wrong.push("SUPERUSER");
        }
        if r.get::<_, bool>("rolbypassrls") {
            wrong.push("BYPASSRLS");
        }
        if tenant {
            for (col, what) in [
                ("rolcanlogin", "LOGIN"),
                ("rolcreaterole", "CREATEROLE"),
                ("rolcreatedb", "CREATEDB"),
            ] {
                if r.get::<_, bool>(col) {
                    wrong.push(what);
                }
            }
        }
        if !wrong.is_empty() {
            let list = wrong.join(", ");
            report.found(
                Level::Fail,
                Check::RoleAttributes,
                target,
                &name,
                format!("has {list}: ALTER ROLE {name} NO{}", wrong.join(" NO")),
            );
        }
    }
    report.looked_at(Check::RoleMembership, tenant_roles);
    for m in client.query(MEMBERS, &[]).await? {
        let group: String = m.get("grp");
        let member: String = m.get("member");
        // A role of no known tenant counts as another tenant's.
        let (g, mm) = (known.tenant_of(&group), known.tenant_of(&member));
        if g.is_none() || g != mm {
            report.found(
                Level::Fail,
                Check::RoleMembership,
                target,
                format!("{member} in {group}"),
                format!(
                    "one tenant's role inherits another's rights: REVOKE {group} FROM {member}"
                ),
            );
        }
    }
    let dbs = client.query(DATABASES, &[]).await?;
    report.looked_at(Check::DatabaseConnect, dbs.len());
    for d in dbs {
        if d.get::<_, bool>("public_connect") {
            let name: String = d.get("datname");
            report.found(
                Level::Fail,
                Check::DatabaseConnect,
                target,
                &name,
                format!("PUBLIC may CONNECT: REVOKE CONNECT ON DATABASE {name} FROM PUBLIC"),
            );
        }
    }
    Ok(())
}
