//! `/console/session`: signing the console in and out. `POST` trades a token for a session
//! cookie (and answers the session's CSRF token and role), `GET` says who the cookie is (so a
//! reload stays signed in), `DELETE` signs out.

use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::auth::{role_of_token, same_origin, CSRF_HEADER};
use crate::session::{cookie_of, Session, COOKIE, IDLE};
use crate::{ApiError, ApiState};

/// The body of a sign-in.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignIn {
    token: String,
}

fn answer(session: &Session) -> Json<serde_json::Value> {
    Json(json!({ "role": session.role, "csrf": session.csrf }))
}

/// A wrong token costs this long, so guessing is slow.
const WRONG_TOKEN_DELAY: Duration = Duration::from_millis(300);

pub(crate) async fn sign_in(
    State(s): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<SignIn>, JsonRejection>,
) -> Result<Response, ApiError> {
    if !same_origin(&headers) {
        return Err(ApiError::Forbidden(
            "sign in from the console's own page, not from another origin",
        ));
    }
    let Json(req) = body?;
    let Some(role) = role_of_token(&s, req.token.trim()) else {
        tokio::time::sleep(WRONG_TOKEN_DELAY).await;
        return Err(ApiError::Unauthorized(
            "that is not this instance's API token or read-only console token",
        ));
    };
    let (id, session) = s.sessions.open(role);
    let cookie = format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        IDLE.as_secs()
    );
    Ok((
        StatusCode::OK,
        [(header::SET_COOKIE, cookie)],
        answer(&session),
    )
        .into_response())
}

pub(crate) async fn whoami(
    State(s): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    cookie_of(&headers)
        .and_then(|id| s.sessions.get(id))
        .map(|session| answer(&session))
        .ok_or(ApiError::Unauthorized("not signed in"))
}

pub(crate) async fn sign_out(
    State(s): State<ApiState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(id) = cookie_of(&headers) {
        if let Some(session) = s.sessions.get(id) {
            let presented = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            if presented != Some(session.csrf.as_str()) || !same_origin(&headers) {
                return Err(ApiError::Forbidden(
                    "signing out needs the session's X-CSRF-Token",
                ));
            }
            s.sessions.close(id);
        }
    }
    let expired = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, expired)]).into_response())
}
