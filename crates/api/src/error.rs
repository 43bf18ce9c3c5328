//! API errors and their JSON form.

use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bulkhead_directory::{DirectoryError, ErrorKind};
use bulkhead_model::ModelError;
use serde_json::json;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A directory operation failed.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// Provisioning or a migration failed.
    #[error(transparent)]
    Provision(#[from] bulkhead_provisioner::ProvisionError),
    /// A backup, restore or erasure was refused or failed.
    #[error(transparent)]
    Backup(#[from] bulkhead_backup::BackupError),
    /// A point-in-time recovery (or its status) was refused or failed.
    #[error(transparent)]
    Pitr(#[from] bulkhead_pitr::PitrError),
    /// A move was refused or failed.
    #[error(transparent)]
    Move(#[from] bulkhead_mover::MoveError),
    /// Reading or writing the audit log failed.
    #[error(transparent)]
    Audit(#[from] bulkhead_audit::AuditError),
    /// Metering failed.
    #[error(transparent)]
    Metering(#[from] bulkhead_metering::MeteringError),
    /// A query parameter is malformed.
    #[error("{0}")]
    BadQuery(String),
    /// A request that needs an explicit confirmation.
    #[error("{0}")]
    NeedsConfirmation(&'static str),
    /// A path segment or query value failed validation.
    #[error(transparent)]
    Invalid(#[from] ModelError),
    /// The JSON body is malformed or fails validation.
    #[error("invalid request body: {0}")]
    Body(String),
    /// No or wrong bearer token.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// A valid credential that may not do this (the read-only token acting, a console
    /// action without its CSRF token or from another origin).
    #[error("{0}")]
    Forbidden(&'static str),
    /// No such route.
    #[error("no such endpoint: {0}")]
    NoRoute(String),
    /// A check could not run (a cluster unreachable, a catalog query failed).
    #[error("{0}")]
    Internal(String),
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        ApiError::Body(r.body_text())
    }
}

impl ApiError {
    fn status_and_kind(&self) -> (StatusCode, &'static str) {
        let by_kind = |kind: ErrorKind| match kind {
            ErrorKind::Invalid => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Unsuitable => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        match self {
            ApiError::Directory(DirectoryError::Pool(_)) => {
                (StatusCode::SERVICE_UNAVAILABLE, "internal")
            }
            ApiError::Directory(e) => (by_kind(e.kind()), e.kind().label()),
            ApiError::Provision(e) => (by_kind(e.kind()), e.kind().label()),
            ApiError::Move(e) => (by_kind(e.kind()), e.kind().label()),
            ApiError::Backup(e) => (by_kind(e.kind()), e.kind().label()),
            ApiError::Pitr(e) => (by_kind(e.kind()), e.kind().label()),
            ApiError::Audit(e) => (by_kind(e.kind()), e.kind().label()),
            ApiError::Metering(e) => (by_kind(e.kind()), e.kind().label()),
            ApiError::NeedsConfirmation(_)
            | ApiError::Invalid(_)
            | ApiError::Body(_)
            | ApiError::BadQuery(_) => (StatusCode::BAD_REQUEST, "invalid"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NoRoute(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind) = self.status_and_kind();
        if status.is_server_error() {
            tracing::error!(error = %self, "API request failed");
        }
        let body = json!({ "error": { "kind": kind, "message": self.to_string() } });
        (status, Json(body)).into_response()
    }
}
