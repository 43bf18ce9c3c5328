//! Who may call `/v1/`: a bearer token (the admin token, or the read-only console token), or
//! a console session cookie. Tokens are compared in constant time.
//!
//! Invariants: the read-only credential never changes anything (any method but GET/HEAD is
//! refused) and never downloads a backup (it holds tenant rows); a request authenticated by
//! the session cookie alone that changes something must carry the session's CSRF token and,
//! when the browser names one, come from this origin.

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, HOST, ORIGIN};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::session::{cookie_of, Role, Session};
use crate::{ApiError, ApiState};

/// The header a console request that changes something carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How a request proved who it is.
pub(crate) enum Credential {
    /// `Authorization: Bearer`.
    Bearer(Role),
    /// The console's cookie.
    Cookie(Session),
}

impl Credential {
    pub(crate) fn role(&self) -> Role {
        match self {
            Credential::Bearer(r) => *r,
            Credential::Cookie(s) => s.role,
        }
    }
}

/// The role a presented token has, if it is one of this instance's.
pub(crate) fn role_of_token(state: &ApiState, token: &str) -> Option<Role> {
    if constant_time_eq(token.as_bytes(), state.token.as_bytes()) {
        return Some(Role::Admin);
    }
    match &state.read_token {
        Some(r) if constant_time_eq(token.as_bytes(), r.as_bytes()) => Some(Role::ReadOnly),
        _ => None,
    }
}

/// The request's credential: its bearer token when it has one, else its session cookie.
pub(crate) fn credential(state: &ApiState, headers: &HeaderMap) -> Result<Credential, ApiError> {
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if let Some(t) = bearer {
        return role_of_token(state, t)
            .map(Credential::Bearer)
            .ok_or(ApiError::Unauthorized(
                "the bearer token is not this instance's admin or console token",
            ));
    }
    match cookie_of(headers) {
        Some(id) => state.sessions.get(id).map(Credential::Cookie).ok_or(
            ApiError::Unauthorized("the console session ended (signed out, expired, or the server restarted); sign in again"),
        ),
        None => Err(ApiError::Unauthorized(
            "missing `Authorization: Bearer <token>`; the token is in the data folder's instance.json",
        )),
    }
}

/// True when the browser says the request comes from a page of this origin (or says
/// nothing: clients that are not browsers send no `Origin`).
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site != "same-origin" && site != "none" {
            return false;
        }
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return true;
    };
    let host = headers.get(HOST).and_then(|v| v.to_str().ok());
    match (origin.to_str().ok(), host) {
        (Some(o), Some(h)) => o == format!("http://{h}") || o == format!("https://{h}"),
        _ => false,
    }
}

fn safe(method: &Method) -> bool {
    *method == Method::GET || *method == Method::HEAD
}

/// Checks what `credential` may do with `method` on `path`.
pub(crate) fn authorize(
    credential: &Credential,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    if !safe(method) {
        if let Credential::Cookie(session) = credential {
            if !same_origin(headers) {
                return Err(ApiError::Forbidden(
                    "a console action must come from the console's own origin",
                ));
            }
            let presented = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            if !presented.is_some_and(|p| constant_time_eq(p.as_bytes(), session.csrf.as_bytes())) {
                return Err(ApiError::Forbidden(
                    "missing or wrong X-CSRF-Token: console actions carry the session's CSRF token (reload the console)",
                ));
            }
        }
    }
    if credential.role() == Role::ReadOnly {
        if !safe(method) {
            return Err(ApiError::Forbidden(
                "the read-only console token can see but not act; sign in with the admin API token to change anything",
            ));
        }
        if path.ends_with("/backup") {
            return Err(ApiError::Forbidden(
                "a backup holds the tenant's rows; the read-only console token cannot download one",
            ));
        }
    }
    Ok(())
}

pub(crate) async fn require_token(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    let checked = credential(&state, request.headers()).and_then(|c| {
        authorize(
            &c,
            request.method(),
            request.uri().path(),
            request.headers(),
        )
    });
    match checked {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_whole_tokens() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn another_origin_is_not_the_same() {
        let mut h = HeaderMap::new();
        h.insert(HOST, "127.0.0.1:8080".parse().expect("h"));
        assert!(same_origin(&h));
        h.insert(ORIGIN, "http://127.0.0.1:8080".parse().expect("h"));
        assert!(same_origin(&h));
        h.insert(ORIGIN, "http://evil.example".parse().expect("h"));
        assert!(!same_origin(&h));
        h.insert(ORIGIN, "http://127.0.0.1:8080".parse().expect("h"));
        h.insert("sec-fetch-site", "cross-site".parse().expect("h"));
        assert!(!same_origin(&h));
    }
}
