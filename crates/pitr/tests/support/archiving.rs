//! A throwaway cluster that archives its WAL into a pgBackRest repository of its own (shared
//! by the tests and the benchmark with `#[path]`): the folder, the settings, the server, the
//! configuration. Its folder is named `bulkhead-...` like every test cluster's, so CI's
//! leftover check sees a side instance that outlived its test.

use bulkhead_pgkit::{RunAs, ThrowawayCluster};
use bulkhead_pitr::Layout;

/// The cluster, its archiving layout (stanza `main`) and the folder holding the layout.
pub fn start(extra: &[(&str, &str)]) -> (ThrowawayCluster, Layout, tempfile::TempDir) {
    let root = tempfile::Builder::new()
        .prefix("bulkhead-pitr-")
        .tempdir()
        .expect("tmp");
    RunAs::detect()
        .expect("account")
        .allow_traverse(root.path())
        .expect("traverse");
    let layout = Layout::new(&root.path().join("pitr"), "main");
    layout.create_folders().expect("folders");
    let archive = layout.server_settings();
    let mut settings: Vec<(&str, &str)> = extra.to_vec();
    settings.extend(archive.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let pg = ThrowawayCluster::start_with_settings(&settings).expect("cluster");
    layout
        .write_config(&pg.root().join("data"), pg.port())
        .expect("config");
    (pg, layout, root)
}
