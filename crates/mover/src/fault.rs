//! Fault injection for crash tests of real processes: with `BULKHEAD_FAULT_PAUSE_AT` set to
//! a point's name, the mover stops there (saying so on stderr) and waits to be killed. The
//! points are the phases as they start (`planned`, `provisioned`, `copying`, `copied`,
//! `cutover`) and the cutover's steps as they end (`cutover:hold`, `cutover:drain`,
//! `cutover:fence`, `cutover:replay`, `cutover:parity`, `cutover:sequences`) and `switched`
//! (the placement switched, the move's slot not yet dropped). Unset (always, outside
//! tests), this does nothing.

/// The environment variable naming the point to stop at.
pub const PAUSE_AT: &str = "BULKHEAD_FAULT_PAUSE_AT";

/// Stops here for good when `PAUSE_AT` names `point`.
pub(crate) async fn point(point: &str) {
    if std::env::var(PAUSE_AT).is_ok_and(|p| p == point) {
        eprintln!(
            "fault injection: paused at {point} (pid {})",
            std::process::id()
        );
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        }
    }
}
