//! `bulkhead up` as a user runs it: boots, answers /health, keeps its state across restarts,
//! refuses a second instance on the same folder, stops PostgreSQL on SIGTERM, and uses the
//! configured servers instead of the embedded one when given a configuration.

mod support;

use std::time::{Duration, Instant};

use support::{alive, cli, postmaster_pid, workspace, Up};

async fn get_json(url: &str) -> (u16, serde_json::Value) {
    let resp = reqwest::get(url).await.expect("GET");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json"))
}

#[tokio::test(flavor = "multi_thread")]
async fn up_answers_health_keeps_state_across_restart_and_stops_postgres_on_sigterm() {
    let ws = workspace();
    let data = ws.path().join(".bulkhead");
    let started = Instant::now();
    let up = Up::start(&data, &[]);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "boot took {:?}",
        started.elapsed()
    );
    let (status, body) = get_json(&format!("{}/health", up.api_url)).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (_, version) = get_json(&format!("{}/version", up.api_url)).await;
    assert_eq!(version["name"], "bulkhead");

    let created = up.cli(&["tenant", "create", "acme", "--tier", "business"]);
    assert_eq!(created.code, 0, "{}", created.stderr);
    let pg = postmaster_pid(&data.join("pgdata")).expect("postmaster.pid");
    assert!(alive(pg));

    let status = up.stop();
    assert!(status.success(), "up exited with {status}");
    assert!(!alive(pg), "postgres {pg} survived SIGTERM of bulkhead up");
    assert!(
        !data.join("instance.json").exists(),
        "instance file left behind"
    );

    let up = Up::start(&data, &[]);
    let shown = up.cli(&["--json", "tenant", "show", "acme"]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    let tenant: serde_json::Value = serde_json::from_str(&shown.stdout).expect("json");
    assert_eq!(tenant["tier"], "business");
    let clusters = up.cli(&["--json", "cluster", "list"]);
    let clusters: serde_json::Value = serde_json::from_str(&clusters.stdout).expect("json");
    assert_eq!(
        clusters.as_array().map(Vec::len),
        Some(1),
        "local registered once: {clusters}"
    );
    let pg = postmaster_pid(&data.join("pgdata")).expect("postmaster.pid");
    assert!(up.stop().success());
    assert!(!alive(pg));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_up_on_the_same_folder_is_refused_and_harms_nothing() {
    let ws = workspace();
    let data = ws.path().join(".bulkhead");
    let first = Up::start(&data, &[]);
    let second = support::up_command(&data).output().expect("second up");
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("already running"), "{stderr}");
    assert!(
        stderr.contains(&first.pid().to_string()),
        "names the holder: {stderr}"
    );
    let (status, _) = get_json(&format!("{}/health", first.api_url)).await;
    assert_eq!(status, 200, "the first instance still serves");
    assert!(first.stop().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn up_with_a_config_uses_the_given_servers_and_starts_no_embedded_one() {
    let pg = bulkhead_pgkit::ThrowawayCluster::start().expect("cluster");
    let control = pg.create_database("control").await.expect("control db");
    let ws = workspace();
    let config = ws.path().join("bulkhead.toml");
    std::fs::write(
        &config,
        format!(
            "[control]\ndsn = \"{}\"\n\n[[clusters]]\nname = \"main\"\nregion = \"eu\"\nadmin_dsn = \"{}\"\n",
            control.dsn,
            pg.dsn("postgres")
        ),
    )
    .expect("config");
    let data = ws.path().join(".bulkhead");
    let up = Up::start(&data, &["--config", config.to_str().expect("utf8")]);
    assert!(
        up.stdout.iter().any(|l| l.contains("configured servers")),
        "{:?}",
        up.stdout
    );
    assert!(
        !data.join("pgdata").exists(),
        "no embedded cluster with a configuration"
    );
    let (status, _) = get_json(&format!("{}/health", up.api_url)).await;
    assert_eq!(status, 200);
    let list = up.cli(&["--json", "cluster", "list"]);
    let list: serde_json::Value = serde_json::from_str(&list.stdout).expect("json");
    let names: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["main"]);
    assert!(up.stop().success());
}

#[test]
fn an_invalid_config_is_refused_naming_the_key() {
    let ws = workspace();
    let config = ws.path().join("bulkhead.toml");
    std::fs::write(&config, "[api]\nlisten = \"not an address\"\n").expect("config");
    let out = std::process::Command::new(support::BIN)
        .arg("--data-dir")
        .arg(ws.path().join(".bulkhead"))
        .args(["up", "--config"])
        .arg(&config)
        .output()
        .expect("up");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("api.listen"), "{stderr}");
    let out = cli(&ws.path().join("nowhere"), &["tenant", "list"]);
    assert_eq!(out.code, 7, "no instance: {}", out.stderr);
    assert!(out.stderr.contains("no running Bulkhead"), "{}", out.stderr);
}

#[test]
fn without_postgres_binaries_up_says_how_to_install_them() {
    let ws = workspace();
    let empty = ws.path().join("no-binaries");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let out = support::up_command(&ws.path().join(".bulkhead"))
        .env("BULKHEAD_PG_BINDIR", &empty)
        .output()
        .expect("up");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no PostgreSQL server binaries found"),
        "{stderr}"
    );
    assert!(stderr.contains("apt-get install postgresql"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_up_killed_outright_does_not_block_the_next_one() {
    let ws = workspace();
    let data = ws.path().join(".bulkhead");
    let up = Up::start(&data, &[]);
    assert_eq!(up.cli(&["tenant", "create", "acme"]).code, 0);
    let orphan = postmaster_pid(&data.join("pgdata")).expect("postmaster.pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(up.pid()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    drop(up);
    assert!(
        alive(orphan),
        "postgres outlives a SIGKILLed bulkhead (nothing could stop it)"
    );
    let up = Up::start(&data, &[]);
    assert!(!alive(orphan), "the next up stopped the orphaned postgres");
    let shown = up.cli(&["tenant", "show", "acme"]);
    assert_eq!(shown.code, 0, "nothing lost: {}", shown.stderr);
    let pg = postmaster_pid(&data.join("pgdata")).expect("postmaster.pid");
    assert!(up.stop().success());
    assert!(!alive(pg));
}
