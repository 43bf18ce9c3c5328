//! The guard's cost per statement: on the cache-hit paths (the quick lexer's shape, the
//! scanner's shape, the exact text) and on a miss (a full parse and walk), for a short and a
//! long statement. Prints a markdown table.
//!
//! `cargo bench -p bulkhead-gateway --bench guard`

use std::hint::black_box;
use std::time::Instant;

use bulkhead_gateway::guard::{inspect, inspect_uncached};

/// Microseconds per call of `f` on each of `texts`, `rounds` times over (after a warm-up).
fn per_call(texts: &[String], rounds: usize, f: impl Fn(&str)) -> f64 {
    for t in texts {
        f(t);
    }
    let start = Instant::now();
    for _ in 0..rounds {
        for t in texts {
            f(t);
        }
    }
    start.elapsed().as_nanos() as f64 / 1000.0 / (rounds * texts.len()) as f64
}

fn long_query(i: usize) -> String {
    let mut q = String::from("SELECT o.id, o.amount, c.name, c.country FROM orders o JOIN customers c ON c.tenant_id = o.tenant_id AND c.id = o.customer_id WHERE o.created_at > now() - interval '30 days' AND o.status IN ('open', 'paid', 'shipped')");
    for k in 0..20 {
        q.push_str(&format!(
            " AND (o.amount > {} OR o.note LIKE 'x{k}%')",
            i + k
        ));
    }
    q.push_str(" ORDER BY o.created_at DESC LIMIT 50");
    q
}

fn main() {
    let variants = 1000;
    let short: Vec<String> = (0..variants)
        .map(|i| format!("SELECT abalance FROM pgbench_accounts WHERE aid = {i}"))
        .collect();
    let commented: Vec<String> = (0..variants)
        .map(|i| format!("/* app */ SELECT abalance FROM pgbench_accounts WHERE aid = {i}"))
        .collect();
    let context = vec!["SET LOCAL bulkhead.tenant = 'acme'".to_string()];
    let long: Vec<String> = (0..variants).map(long_query).collect();
    let hit = |t: &str| {
        black_box(inspect(t).ok());
    };
    let miss = |t: &str| {
        black_box(inspect_uncached(t).ok());
    };
    let parse_only = |t: &str| {
        black_box(pg_query::parse(t, 0).ok());
    };
    let rows: [(&str, &[String], usize, f64); 8] = [
        (
            "hit: shape, quick lexer",
            &short,
            200,
            per_call(&short, 200, hit),
        ),
        (
            "hit: shape, PostgreSQL's scanner (a comment)",
            &commented,
            50,
            per_call(&commented, 50, hit),
        ),
        (
            "hit: exact text (a context statement)",
            &context,
            200_000,
            per_call(&context, 200_000, hit),
        ),
        (
            "hit: shape, quick lexer",
            &long,
            20,
            per_call(&long, 20, hit),
        ),
        (
            "miss: parse and walk the whole tree",
            &short,
            2,
            per_call(&short, 2, miss),
        ),
        (
            "miss: of which PostgreSQL's parser",
            &short,
            2,
            per_call(&short, 2, parse_only),
        ),
        (
            "miss: parse and walk the whole tree",
            &long[..50],
            1,
            per_call(&long[..50], 1, miss),
        ),
        (
            "miss: of which PostgreSQL's parser",
            &long[..50],
            1,
            per_call(&long[..50], 1, parse_only),
        ),
    ];
    println!("| path | text bytes | µs per statement |");
    println!("|---|---|---|");
    for (what, texts, _, us) in rows {
        println!("| {what} | {} | {us:.2} |", texts[0].len());
    }
}
