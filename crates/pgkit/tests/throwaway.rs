//! The throwaway cluster starts, answers, and never outlives its test process: not when
//! dropped, not when the test panics, not when the test process is killed outright.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use bulkhead_pgkit::{shared_cluster, ThrowawayCluster};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const HELPER_ENV: &str = "BULKHEAD_PGKIT_HELPER";

fn alive(pid: i32) -> bool {
    bulkhead_pgkit::process_running(pid)
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn cluster_answers_with_logical_wal_and_fresh_databases() {
    let cluster = shared_cluster().expect("cluster");
    let db = cluster.create_database("kit").await.expect("database");
    let client = cluster.connect(&db.name).await.expect("connect");
    let row = client.query_one("SHOW wal_level", &[]).await.expect("show");
    assert_eq!(row.get::<_, String>(0), "logical");
    let row = client
        .query_one("SELECT current_database()", &[])
        .await
        .expect("db");
    assert_eq!(row.get::<_, String>(0), db.name);
}

#[test]
fn dropping_a_cluster_stops_postgres_and_removes_its_folder() {
    let cluster = ThrowawayCluster::start().expect("start");
    let pid = cluster.server().pid().expect("pid");
    let root = cluster.root().to_path_buf();
    assert!(alive(pid) && root.exists());
    drop(cluster);
    assert!(!alive(pid), "postgres {pid} still running after drop");
    assert!(!root.exists(), "{} still exists after drop", root.display());
}

/// Run in a child process by the tests below; does nothing in a normal run.
#[test]
fn helper_starts_cluster_then_misbehaves() {
    let Ok(mode) = std::env::var(HELPER_ENV) else {
        return;
    };
    let out = PathBuf::from(std::env::var("BULKHEAD_PGKIT_HELPER_OUT").expect("out"));
    let cluster = shared_cluster().expect("cluster");
    let info = format!(
        "{} {}",
        cluster.server().pid().expect("pid"),
        cluster.root().display()
    );
    std::fs::write(&out, info).expect("write info");
    match mode.as_str() {
        "panic" => panic!("deliberate panic with a live cluster"),
        _ => std::thread::sleep(Duration::from_secs(600)),
    }
}

fn run_helper(mode: &str) -> (std::process::Child, PathBuf) {
    let out = tempfile::NamedTempFile::new()
        .expect("tmp")
        .into_temp_path()
        .keep()
        .expect("keep");
    let child = Command::new(std::env::current_exe().expect("exe"))
        .args([
            "--exact",
            "helper_starts_cluster_then_misbehaves",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_ENV, mode)
        .env("BULKHEAD_PGKIT_HELPER_OUT", &out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn helper");
    (child, out)
}

fn read_info(out: &PathBuf) -> Option<(i32, PathBuf)> {
    let text = std::fs::read_to_string(out).ok()?;
    let (pid, root) = text.split_once(' ')?;
    Some((pid.parse().ok()?, PathBuf::from(root)))
}

#[test]
fn a_panicking_test_leaves_no_postgres_and_no_folder() {
    let (mut child, out) = run_helper("panic");
    let status = child.wait().expect("wait");
    assert!(!status.success(), "the helper should have failed");
    let (pid, root) = read_info(&out).expect("helper wrote its cluster info");
    assert!(!alive(pid), "postgres {pid} outlived a panicking test");
    assert!(
        !root.exists(),
        "{} outlived a panicking test",
        root.display()
    );
    let _ = std::fs::remove_file(out);
}

#[test]
fn a_killed_test_process_leaves_no_postgres_and_no_folder() {
    let (mut child, out) = run_helper("hang");
    wait_until("the helper started its cluster", || {
        read_info(&out).is_some()
    });
    let (pid, root) = read_info(&out).expect("info");
    assert!(alive(pid));
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).expect("kill helper");
    let _ = child.wait();
    wait_until("the watchdog stopped postgres", || !alive(pid));
    wait_until("the watchdog removed the folder", || !root.exists());
    let _ = std::fs::remove_file(out);
}
