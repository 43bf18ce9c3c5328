//! A load generator for `bench/routed.sh`'s mixed-mode rows: clients that pick a tenant at
//! random for every transaction, where a tenant may live in another database. pgbench binds
//! each client to one database, so it cannot say what a team's own code does when one
//! tenant in a hundred has a database of its own; this does, the same way for every target.
//!
//! Targets:
//! - `gateway DSN`: one connection per client to the gateway as a service login; a
//!   transaction is `BEGIN; SET LOCAL bulkhead.tenant = 'rt<n>'; SELECT ...; COMMIT`.
//! - `hand DSN-PREFIX`: what a team builds by hand behind PgBouncer (or directly): shared
//!   tenants in database `hand` under row-level security (`SET LOCAL app.tenant`), schema
//!   tenants as schemas `t<n>` of `hand` (`SET LOCAL search_path`), database tenants in
//!   databases `hand_<n>`; each client keeps one connection per database it has used.
//!
//! Every statement is its own simple-protocol query, like `pgbench -M simple`. Prints the
//! transactions per second (an integer), and errors on standard error.
//!
//! `cargo bench -p bulkhead-gateway --bench routed_load -- TARGET DSN CLIENTS SECONDS TOTAL SHARED SCHEMA ROWS [PICK]`
//!
//! PICK (optional, `bench/fleet.sh`'s numbering: tenant n is a database tenant when n is a
//! multiple of 151, else a schema tenant when a multiple of 3, else shared) limits the random
//! tenants to one mode: `shared`, `schema` or `database`, or to `pooled` (shared or schema);
//! `all` (the default) picks any.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_postgres::{Client, NoTls};

#[derive(Clone, Copy)]
struct Shape {
    total: u32,
    shared: u32,
    schema: u32,
    rows: u32,
    pick: Pick,
}

/// Which tenants a client picks from (see the module's PICK).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pick {
    All,
    Pooled,
    Shared,
    Schema,
    Database,
}

impl Pick {
    fn parse(s: &str) -> Option<Pick> {
        Some(match s {
            "all" => Pick::All,
            "pooled" => Pick::Pooled,
            "shared" => Pick::Shared,
            "schema" => Pick::Schema,
            "database" => Pick::Database,
            _ => return None,
        })
    }

    /// The fleet numbering's mode of tenant `n`.
    fn of(n: u32) -> Pick {
        if n.is_multiple_of(151) {
            Pick::Database
        } else if n.is_multiple_of(3) {
            Pick::Schema
        } else {
            Pick::Shared
        }
    }
}

/// The hand-built tenancy's tenant id for tenant `n` (the same in `bench/routed.sh`).
fn hand_uuid(n: u32) -> String {
    format!(
        "00000000-0000-4000-8000-{:012}",
        100_000_000_000u64 + u64::from(n)
    )
}

/// The database a transaction for tenant `n` goes to, and its statements.
fn plan(target: &str, shape: Shape, n: u32, k: u32) -> (String, [String; 4]) {
    let select = format!("SELECT value FROM items WHERE id = {k}");
    if target == "gateway" {
        return (
            String::new(),
            [
                "BEGIN".into(),
                format!("SET LOCAL bulkhead.tenant = 'rt{n}'"),
                select,
                "COMMIT".into(),
            ],
        );
    }
    if n <= shape.shared {
        let set = format!("SET LOCAL app.tenant = '{}'", hand_uuid(n));
        (
            "hand".into(),
            ["BEGIN".into(), set, select, "COMMIT".into()],
        )
    } else if n <= shape.shared + shape.schema {
        let set = format!("SET LOCAL search_path = t{n}");
        (
            "hand".into(),
            ["BEGIN".into(), set, select, "COMMIT".into()],
        )
    } else {
        // A database of its own needs no setting: the hand-built path does one statement less.
        (
            format!("hand_{n}"),
            ["BEGIN".into(), String::new(), select, "COMMIT".into()],
        )
    }
}

async fn connect(dsn: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(dsn, NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

async fn client_loop(
    target: String,
    dsn: String,
    shape: Shape,
    until: Instant,
    done: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
) {
    let mut conns: HashMap<String, Client> = HashMap::new();
    let mut rng = StdRng::from_os_rng();
    while Instant::now() < until {
        let n = rng.random_range(1..=shape.total);
        let wanted = match shape.pick {
            Pick::All => true,
            Pick::Pooled => Pick::of(n) != Pick::Database,
            one => Pick::of(n) == one,
        };
        if !wanted {
            continue;
        }
        let k = rng.random_range(1..=shape.rows);
        let (db, statements) = plan(&target, shape, n, k);
        if !conns.contains_key(&db) {
            let url = if db.is_empty() {
                dsn.clone()
            } else {
                format!("{dsn} dbname={db}")
            };
            match connect(&url).await {
                Ok(c) => {
                    conns.insert(db.clone(), c);
                }
                Err(e) => {
                    eprintln!("connect {db}: {e}");
                    errors.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        let Some(client) = conns.get(&db) else {
            continue;
        };
        let mut ok = true;
        for s in statements.iter().filter(|s| !s.is_empty()) {
            if let Err(e) = client.simple_query(s).await {
                if errors.fetch_add(1, Ordering::Relaxed) < 5 {
                    eprintln!("{s}: {e}");
                }
                ok = false;
                let _ = client.simple_query("ROLLBACK").await;
                break;
            }
        }
        if client.is_closed() {
            conns.remove(&db);
        }
        if ok {
            done.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.len() != 8 && args.len() != 9 {
        eprintln!(
            "usage: routed_load gateway|hand DSN CLIENTS SECONDS TOTAL SHARED SCHEMA ROWS [all|pooled|shared|schema|database]"
        );
        std::process::exit(2);
    }
    let num = |i: usize| -> u32 {
        args[i].parse().unwrap_or_else(|_| {
            eprintln!("argument {} must be a number, not {}", i + 1, args[i]);
            std::process::exit(2)
        })
    };
    let (target, dsn) = (args[0].clone(), args[1].clone());
    let (clients, seconds) = (num(2), num(3));
    let shape = Shape {
        total: num(4),
        shared: num(5),
        schema: num(6),
        rows: num(7),
        pick: match args.get(8).map(|s| Pick::parse(s)) {
            None => Pick::All,
            Some(Some(p)) => p,
            Some(None) => {
                eprintln!(
                    "PICK must be all, pooled, shared, schema or database, not {}",
                    args[8]
                );
                std::process::exit(2)
            }
        },
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            std::process::exit(1)
        }
    };
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let elapsed = rt.block_on(async {
        let start = Instant::now();
        let until = start + Duration::from_secs(u64::from(seconds));
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                tokio::spawn(client_loop(
                    target.clone(),
                    dsn.clone(),
                    shape,
                    until,
                    done.clone(),
                    errors.clone(),
                ))
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
        start.elapsed()
    });
    let e = errors.load(Ordering::Relaxed);
    if e > 0 {
        eprintln!("ERR: {e} failed statements or connects");
    }
    println!(
        "{}",
        (done.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64()) as u64
    );
}
