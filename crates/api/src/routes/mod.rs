//! Route table.

mod audit;
mod backups;
mod clusters;
mod console;
mod fleet;
mod health;
mod moves;
mod pitr;
mod proof;
mod services;
mod tenants;
mod usage;

pub(crate) use moves::LiveMoves;

use axum::http::Uri;
use axum::routing::{get, post};
use axum::Router;

use crate::{ApiError, ApiState};

/// Routes that need no token.
pub(crate) fn open() -> Router<ApiState> {
    Router::new()
        .route("/health", get(health::health))
        .route("/version", get(health::version))
        .route("/openapi.json", get(crate::openapi::document))
        .route("/metrics", get(health::metrics))
        .route(
            "/console/session",
            get(console::whoami)
                .post(console::sign_in)
                .delete(console::sign_out),
        )
}

/// Routes under `/v1/`.
pub(crate) fn v1() -> Router<ApiState> {
    Router::new()
        .route("/clusters", get(clusters::list).post(clusters::add))
        .route(
            "/clusters/{name}",
            get(clusters::show).delete(clusters::remove),
        )
        .route("/services", get(services::list).post(services::create))
        .route(
            "/services/{name}",
            get(services::show).delete(services::remove),
        )
        .route("/services/{name}/migrations", post(services::register))
        .route(
            "/services/{name}/definers/{function}",
            axum::routing::put(services::allow_definer).delete(services::disallow_definer),
        )
        .route("/services/{name}/migrate", post(services::migrate))
        .route("/services/{name}/migrations/status", get(services::status))
        .route(
            "/services/{name}/migrations/summary",
            get(services::summary),
        )
        .route(
            "/services/{name}/auth",
            axum::routing::put(services::set_auth),
        )
        .route(
            "/services/{name}/credentials",
            get(services::list_credentials).post(services::create_credential),
        )
        .route(
            "/services/{name}/credentials/{username}",
            axum::routing::delete(services::revoke_credential),
        )
        .route("/keys/{id}", axum::routing::delete(tenants::revoke_key))
        .route("/fleet", get(fleet::fleet))
        .route("/gateway", get(fleet::gateway))
        .route("/moves", get(moves::recent))
        .route("/proof", get(proof::latest))
        .route("/tenants/search", get(tenants::search))
        .route(
            "/tenants/{tenant}/keys",
            get(tenants::keys).post(tenants::issue_key),
        )
        .route("/tenants", get(tenants::list).post(tenants::create))
        .route(
            "/tenants/{tenant}",
            get(tenants::show).delete(tenants::delete),
        )
        .route("/tenants/{tenant}/suspend", post(tenants::suspend))
        .route("/tenants/{tenant}/resume", post(tenants::resume))
        .route("/tenants/{tenant}/rename", post(tenants::rename))
        .route("/tenants/{tenant}/backup", get(backups::backup))
        .route(
            "/tenants/{tenant}/restore",
            post(backups::restore).layer(axum::extract::DefaultBodyLimit::max(8 << 30)),
        )
        .route("/tenants/{tenant}/clone", post(backups::clone))
        .route("/tenants/{tenant}/erase", post(backups::erase))
        .route("/tenants/{tenant}/certificate", get(backups::certificate))
        .route(
            "/tenants/{tenant}/backups",
            get(backups::scheduled).post(backups::take_now),
        )
        .route("/pitr", get(pitr::status))
        .route("/pitr/{cluster}/backup", post(pitr::backup))
        .route("/tenants/{tenant}/move", post(moves::start))
        .route("/tenants/{tenant}/move/finalize", post(moves::finalize))
        .route("/tenants/{tenant}/move/rollback", post(moves::rollback))
        .route("/tenants/{tenant}/moves", get(moves::list))
        .route("/audit", get(audit::list))
        .route("/audit/verify", get(audit::verify))
        .route("/usage", get(usage::usage))
        .route("/usage/export", get(usage::export))
        .route("/usage/collect", post(usage::collect))
        .route("/cost", get(usage::cost))
        .route("/verify", get(proof::verify))
        .route("/probe", post(proof::probe))
}

pub(crate) async fn not_found(uri: Uri) -> ApiError {
    ApiError::NoRoute(uri.path().to_string())
}
