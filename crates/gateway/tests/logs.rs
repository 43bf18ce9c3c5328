//! Every line the gateway logs while serving a client carries the service and the tenant
//! (the session's span).

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use bulkhead_model::Mode;
use support::{connect, env, tenant, tenant_key};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn log_lines_of_a_session_carry_its_tenant() {
    let captured = Captured::default();
    let sink = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("bulkhead_gateway=info")
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .init();
    let env = env("logs_tenant", 2).await;
    let key = tenant_key(&env, "logged", Mode::Schema).await;
    let c = connect(&env, &key).await.expect("login");
    c.simple_query("SELECT 1").await.expect("select");
    let _ = c
        .simple_query("SELECT pg_advisory_lock(7)")
        .await
        .expect_err("refused");
    let id = env
        .dir
        .tenant(&"logged".parse().expect("slug"))
        .await
        .expect("tenant")
        .id;
    let text = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf8");
    let line = text
        .lines()
        .find(|l| l.contains("statement refused"))
        .unwrap_or_else(|| panic!("no refusal logged: {text}"));
    assert!(
        line.contains(&format!("session{{service={} tenant={id}}}", env.service)),
        "{line}"
    );
    // A tenant that never logged in appears in no line.
    let other = tenant(&env, "silent", Mode::Shared).await;
    assert!(!text.contains(&other.to_string()));
}
