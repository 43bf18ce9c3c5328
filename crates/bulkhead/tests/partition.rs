//! A network partition between the gateway and one cluster: a second PostgreSQL runs in a
//! network namespace of its own, reached over a veth pair, and holds one service's tenant.
//! With the pair's far end down (packets silently lost), that tenant's clients get an error
//! within the gateway's network timeout, never a hang; a tenant on the other cluster goes on
//! unaffected; with the link back, the first tenant works again without a restart. Needs
//! root (`ip netns`), as CI runs.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{gateway_client, ok, workspace, Up};

/// The gateway's `network_timeout_secs` in this test.
const NETWORK_TIMEOUT: Duration = Duration::from_secs(3);

fn run(what: &str, cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ip(args: &[&str]) {
    run(
        &format!("ip {}", args.join(" ")),
        Command::new("ip").args(args),
    );
}

/// A PostgreSQL in a network namespace, reachable from here at `addr` over a veth pair.
struct FarCluster {
    ns: String,
    near_if: String,
    far_if: String,
    root: PathBuf,
    host: String,
    password: String,
    pg_ctl: PathBuf,
    account: String,
}

impl FarCluster {
    fn start() -> Self {
        assert!(
            nix::unistd::Uid::effective().is_root(),
            "the partition test needs root for `ip netns` (CI runs as root)"
        );
        let n = std::process::id() % 200 + 20;
        let ns = format!("bulkhead-part-{n}");
        let (near_if, far_if) = (format!("bhpart{n}a"), format!("bhpart{n}b"));
        let (near, host) = (format!("10.213.{n}.1"), format!("10.213.{n}.2"));
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        let _ = Command::new("ip").args(["link", "del", &near_if]).output();
        ip(&["netns", "add", &ns]);
        ip(&[
            "link", "add", &near_if, "type", "veth", "peer", "name", &far_if,
        ]);
        ip(&["link", "set", &far_if, "netns", &ns]);
        ip(&["addr", "add", &format!("{near}/30"), "dev", &near_if]);
        ip(&["link", "set", &near_if, "up"]);
        ip(&[
            "netns",
            "exec",
            &ns,
            "ip",
            "addr",
            "add",
            &format!("{host}/30"),
            "dev",
            &far_if,
        ]);
        ip(&["netns", "exec", &ns, "ip", "link", "set", &far_if, "up"]);
        ip(&["netns", "exec", &ns, "ip", "link", "set", "lo", "up"]);

        let bins = bulkhead_pgkit::PgBinaries::locate().expect("PostgreSQL binaries");
        let run_as = bulkhead_pgkit::RunAs::detect().expect("PostgreSQL account");
        let account = run_as.name().expect("account name");
        // In a bulkhead-* folder, so that CI's leftover check sees a server this leaks.
        let root = tempfile::Builder::new()
            .prefix("bulkhead-part-")
            .tempdir()
            .expect("tempdir")
            .keep();
        run_as.allow_traverse(&root).expect("traverse");
        let data = root.join("data");
        run_as.own_private_dir(&data).expect("data dir");
        let password = format!("pw{}", rand_suffix());
        let pwfile = root.join("pw");
        std::fs::write(&pwfile, &password).expect("pwfile");
        std::fs::set_permissions(&pwfile, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .expect("chmod");
        let mut initdb = Command::new(bins.program("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "bulkhead", "--auth=scram-sha-256", "-E", "UTF8"])
            .arg(format!("--pwfile={}", pwfile.display()));
        run_as.apply(&mut initdb);
        run("initdb", &mut initdb);
        let conf = format!(
            "listen_addresses = '{host}'\nport = 5432\nunix_socket_directories = '{}'\nwal_level = logical\nfsync = off\nmax_connections = 100\n",
            data.display()
        );
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .expect("conf");
        std::io::Write::write_all(&mut f, conf.as_bytes()).expect("write conf");
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all scram-sha-256\nhost all all 10.213.0.0/16 scram-sha-256\n",
        )
        .expect("hba");
        let pg_ctl = bins.program("pg_ctl");
        run(
            "pg_ctl start in the namespace",
            Command::new("ip")
                .args(["netns", "exec", &ns, "runuser", "-u", &account, "--"])
                .arg(&pg_ctl)
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(data.join("log"))
                .args(["-w", "-t", "60", "start"]),
        );
        FarCluster {
            ns,
            near_if,
            far_if,
            root,
            host,
            password,
            pg_ctl,
            account,
        }
    }

    fn dsn(&self) -> String {
        format!(
            "postgres://bulkhead:{}@{}:5432/postgres",
            self.password, self.host
        )
    }

    /// Takes the far end of the link down (up): its packets are lost without a word.
    fn link(&self, up: bool) {
        ip(&[
            "netns",
            "exec",
            &self.ns,
            "ip",
            "link",
            "set",
            &self.far_if,
            if up { "up" } else { "down" },
        ]);
    }
}

impl Drop for FarCluster {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                "runuser",
                "-u",
                &self.account,
                "--",
            ])
            .arg(&self.pg_ctl)
            .arg("-D")
            .arg(self.root.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.near_if])
            .output();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn rand_suffix() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    )
}

/// An error as a client shows it: SQLSTATE and message.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

/// One query as `tenant` on a connection kept between attempts (a new one after an
/// error): how long it took and its error, if any.
struct Prober {
    gateway: String,
    service: String,
    tenant: String,
    key: String,
    client: Option<tokio_postgres::Client>,
}

impl Prober {
    async fn attempt(&mut self) -> (Duration, Option<String>) {
        let t = Instant::now();
        let result = tokio::time::timeout(Duration::from_secs(60), async {
            if self.client.is_none() {
                self.client = Some(
                    gateway_client(&self.gateway, &self.service, &self.tenant, &self.key)
                        .await
                        .map_err(|e| describe(&e))?,
                );
            }
            let c = self.client.as_ref().ok_or("no client")?;
            c.simple_query("SELECT count(*) FROM customers")
                .await
                .map(|_| ())
                .map_err(|e| describe(&e))
        })
        .await;
        let error = match result {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some("no answer within 60 s (a hang)".into()),
        };
        if error.is_some() {
            self.client = None;
        }
        (t.elapsed(), error)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partitioned_cluster_fails_its_tenants_fast_spares_the_others_and_heals() {
    let far = FarCluster::start();
    let ws = workspace();
    let config = ws.path().join("bulkhead.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nnetwork_timeout_secs = {}\n",
            NETWORK_TIMEOUT.as_secs()
        ),
    )
    .expect("config");
    let up = Up::start(
        &ws.path().join(".bulkhead"),
        &["--config", config.to_str().expect("utf8")],
    );
    up.billing_service("billing", &[]);
    ok(up.cli(&[
        "cluster",
        "add",
        "far",
        "--dsn",
        &far.dsn(),
        "--region",
        "elsewhere",
    ]));
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../provisioner/tests/fixtures/billing");
    ok(up.cli(&[
        "service",
        "create",
        "remote",
        "--migrations",
        fixtures.to_str().expect("utf8"),
        "--reference",
        "countries",
        "--cluster",
        "far",
    ]));
    let near_key = up.tenant_with_key("near", "billing", "shared");
    ok(up.cli(&["tenant", "create", "away", "--service", "remote"]));
    let away_key = ok(up.cli(&["tenant", "key", "create", "away"]))
        .stdout
        .trim()
        .to_string();
    let prober = |service: &str, tenant: &str, key: &str| Prober {
        gateway: up.gateway.clone(),
        service: service.into(),
        tenant: tenant.into(),
        key: key.into(),
        client: None,
    };
    let mut near = prober("billing", "near", &near_key);
    let mut away = prober("remote", "away", &away_key);
    for p in [&mut near, &mut away] {
        let (_, e) = p.attempt().await;
        assert!(
            e.is_none(),
            "before the partition: {e:?}; the far server's log:\n{}",
            std::fs::read_to_string(far.root.join("data/log")).unwrap_or_default()
        );
    }

    far.link(false);
    let cut = Instant::now();
    let mut away_errors = Vec::new();
    let mut slowest_away = Duration::ZERO;
    let mut near_ok = 0;
    let mut slowest_near = Duration::ZERO;
    while cut.elapsed() < NETWORK_TIMEOUT * 4 {
        let (took, e) = away.attempt().await;
        slowest_away = slowest_away.max(took);
        assert!(
            took < NETWORK_TIMEOUT + Duration::from_secs(3),
            "a query of the partitioned cluster's tenant took {took:?} (timeout {NETWORK_TIMEOUT:?}): {e:?}"
        );
        if let Some(e) = e {
            away_errors.push((cut.elapsed(), e));
        }
        // The other cluster's tenant meanwhile: unaffected.
        let (took, e) = near.attempt().await;
        assert_eq!(
            e, None,
            "the tenant on the reachable cluster failed during the partition"
        );
        slowest_near = slowest_near.max(took);
        near_ok += 1;
    }
    assert!(
        !away_errors.is_empty(),
        "no error for the partitioned cluster's tenant"
    );

    far.link(true);
    let healed = Instant::now();
    let recovered = loop {
        let (_, e) = away.attempt().await;
        if e.is_none() {
            break healed.elapsed();
        }
        assert!(
            healed.elapsed() < Duration::from_secs(30),
            "the tenant did not work again within 30 s of the link's return: {e:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "partition: first error for `away` {} ms after the cut ({}), slowest attempt {} ms, {} errors; `near` {} queries, all fine, slowest {} ms; `away` worked again {} ms after the link returned",
        away_errors[0].0.as_millis(),
        away_errors[0].1,
        slowest_away.as_millis(),
        away_errors.len(),
        near_ok,
        slowest_near.as_millis(),
        recovered.as_millis()
    );
}
