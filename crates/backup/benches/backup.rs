//! Backup and restore of a 1,000,000-row tenant (an orders-shaped table in shared tables,
//! beside another tenant) against a plain binary `COPY ... TO` a file and `COPY ... FROM` it,
//! in the same run, on a throwaway cluster with production durability. Prints a table.
//!
//! `cargo bench -p bulkhead-backup --bench backup [-- --rows N]`

use std::time::{Duration, Instant};

use bulkhead_backup::MasterKey;
use bulkhead_directory::TenantRef;
use futures_util::{SinkExt, StreamExt};

#[path = "../../../bench/support/orders.rs"]
mod orders;

use orders::COLUMNS;

fn rate(rows: i64, d: Duration) -> String {
    format!(
        "{:.2} s ({:.0} rows/s)",
        d.as_secs_f64(),
        rows as f64 / d.as_secs_f64()
    )
}

#[tokio::main]
async fn main() {
    let mut rows: i64 = 1_000_000;
    let argv: Vec<String> = std::env::args().collect();
    for w in argv.windows(2) {
        if w[0] == "--rows" {
            rows = w[1].parse().unwrap_or(rows);
        }
    }
    let orders::Bench { pg, dir, big, .. } = orders::setup(rows, rows / 5).await;
    let mut pool = pg.connect("bh_bench").await.expect("pool");
    let work = tempfile::tempdir().expect("tmp");

    // Plain COPY to a file and back (the same rows: delete them first, like a restore).
    let plain_file = work.path().join("plain.copy");
    let started = Instant::now();
    let out = pool
        .copy_out(&format!(
            "COPY (SELECT {COLUMNS} FROM orders WHERE tenant_id = '{big}') TO STDOUT (FORMAT binary)"
        ))
        .await
        .expect("copy out");
    futures_util::pin_mut!(out);
    let mut buf = Vec::new();
    while let Some(chunk) = out.next().await {
        buf.extend_from_slice(&chunk.expect("chunk"));
    }
    std::fs::write(&plain_file, &buf).expect("write");
    let plain_out = started.elapsed();
    let started = Instant::now();
    let data = std::fs::read(&plain_file).expect("read");
    let tx = pool.transaction().await.expect("tx");
    tx.batch_execute(&format!("DELETE FROM orders WHERE tenant_id = '{big}'"))
        .await
        .expect("delete");
    let sink = tx
        .copy_in(&format!(
            "COPY orders ({COLUMNS}) FROM STDIN (FORMAT binary)"
        ))
        .await
        .expect("copy in");
    futures_util::pin_mut!(sink);
    for chunk in data.chunks(1 << 20) {
        sink.send(bytes::Bytes::copy_from_slice(chunk))
            .await
            .expect("send");
    }
    sink.finish().await.expect("finish");
    tx.commit().await.expect("commit");
    let plain_in = started.elapsed();

    let master = MasterKey::from_bytes(rand::random());
    let archive = work.path().join("big.bhk");
    let started = Instant::now();
    let file = std::io::BufWriter::new(std::fs::File::create(&archive).expect("create"));
    bulkhead_backup::backup(&dir, &master, &TenantRef::Id(big), None, file, &())
        .await
        .expect("backup");
    let backup = started.elapsed();
    let started = Instant::now();
    let tenant_rec = dir.tenant(&TenantRef::Id(big)).await.expect("tenant");
    let file = std::io::BufReader::new(std::fs::File::open(&archive).expect("open"));
    bulkhead_backup::restore(&dir, &master, &tenant_rec, file, false, &())
        .await
        .expect("restore");
    let restore = started.elapsed();
    let size = std::fs::metadata(&archive).expect("meta").len();

    println!("Backup and restore of a {rows}-row tenant (shared tables, beside a {}-row tenant), fsync on", rows / 5);
    println!();
    println!("| run | time | vs plain COPY |");
    println!("|---|---|---|");
    println!(
        "| plain COPY TO a file (binary) | {} | 1.00 |",
        rate(rows, plain_out)
    );
    println!(
        "| bulkhead tenant backup (zstd, AES-256-GCM, SHA-256) | {} | {:.2} of its throughput |",
        rate(rows, backup),
        plain_out.as_secs_f64() / backup.as_secs_f64()
    );
    println!(
        "| plain COPY FROM the file (delete, copy, one transaction) | {} | 1.00 |",
        rate(rows, plain_in)
    );
    println!("| bulkhead tenant restore (verify, delete, copy, one transaction) | {} | {:.2} of its throughput |", rate(rows, restore), plain_in.as_secs_f64() / restore.as_secs_f64());
    println!();
    println!(
        "archive {:.1} MB, plain COPY file {:.1} MB",
        size as f64 / 1e6,
        data.len() as f64 / 1e6
    );
}
