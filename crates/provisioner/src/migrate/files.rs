//! Reading a folder of migration files named `V<version>__<name>.sql` (the Flyway/refinery
//! convention). Other `.sql` files are refused so that a typo never silently skips a
//! migration; files with other extensions (READMEs) are ignored.

use std::path::Path;

use bulkhead_directory::MigrationFile;

use crate::ProvisionError;

/// Reads every migration in `dir`, in version order.
pub fn read_migrations_dir(dir: &Path) -> Result<Vec<MigrationFile>, ProvisionError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        ProvisionError::Migration(format!(
            "cannot read migrations folder {}: {e}",
            dir.display()
        ))
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry
            .map_err(|e| ProvisionError::Migration(format!("reading {}: {e}", dir.display())))?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if !file_name.ends_with(".sql") {
            continue;
        }
        let (version, name) = parse_file_name(&file_name).ok_or_else(|| {
            ProvisionError::Migration(format!(
                "{file_name}: migration files are named V<version>__<name>.sql, e.g. V1__create_orders.sql"
            ))
        })?;
        let sql = std::fs::read_to_string(entry.path()).map_err(|e| {
            ProvisionError::Migration(format!("cannot read {}: {e}", entry.path().display()))
        })?;
        if let Some(other) = files.iter().find(|f: &&MigrationFile| f.version == version) {
            return Err(ProvisionError::Migration(format!(
                "{file_name} and V{}__{}.sql have the same version",
                other.version, other.name
            )));
        }
        files.push(MigrationFile { version, name, sql });
    }
    files.sort_by_key(|f| f.version);
    Ok(files)
}

/// `V12__add_orders.sql` → (12, "add_orders").
pub fn parse_file_name(file_name: &str) -> Option<(i64, String)> {
    let stem = file_name.strip_suffix(".sql")?;
    let rest = stem.strip_prefix('V')?;
    let (version, name) = rest.split_once("__")?;
    if version.is_empty() || !version.chars().all(|c| c.is_ascii_digit()) || name.is_empty() {
        return None;
    }
    let version: i64 = version.parse().ok()?;
    (version > 0).then(|| (version, name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_follow_the_flyway_convention() {
        assert_eq!(parse_file_name("V1__init.sql"), Some((1, "init".into())));
        assert_eq!(
            parse_file_name("V0012__add_orders.sql"),
            Some((12, "add_orders".into()))
        );
        for bad in [
            "V1_init.sql",
            "v1__init.sql",
            "V__init.sql",
            "V1__.sql",
            "Vx__a.sql",
            "V0__a.sql",
            "init.sql",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_folder_is_read_in_version_order_and_bad_names_are_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("V10__b.sql"), "SELECT 2;").expect("w");
        std::fs::write(dir.path().join("V2__a.sql"), "SELECT 1;").expect("w");
        std::fs::write(dir.path().join("README.md"), "notes").expect("w");
        let files = read_migrations_dir(dir.path()).expect("read");
        assert_eq!(files.iter().map(|f| f.version).collect::<Vec<_>>(), [2, 10]);
        std::fs::write(dir.path().join("oops.sql"), "SELECT 3;").expect("w");
        let err = read_migrations_dir(dir.path()).expect_err("bad name");
        assert!(err.to_string().contains("oops.sql"), "{err}");
    }
}
