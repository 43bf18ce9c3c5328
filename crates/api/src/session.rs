//! Console sessions: signing in trades a token (the admin token, or the read-only console
//! token) for a random session id held in an `HttpOnly; SameSite=Strict` cookie, so the token
//! itself is typed once and never kept by the page, never put in a URL, and never readable by
//! script. Each session has its own CSRF token, which every request that changes something
//! must carry in `X-CSRF-Token` (a cookie alone, sent by the browser on its own, never
//! suffices).
//!
//! Sessions live in this process's memory: a restart of `bulkhead up` signs everyone out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::distr::{Alphanumeric, SampleString};

/// The cookie's name.
pub const COOKIE: &str = "bulkhead_session";

/// How long a session lasts without being used.
pub const IDLE: Duration = Duration::from_secs(12 * 3600);

/// At most this many sessions at once (the oldest go first).
const MAX_SESSIONS: usize = 10_000;

/// What a credential may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything (the API token).
    Admin,
    /// See everything an operator sees; change nothing (the console token).
    ReadOnly,
}

/// One signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// What it may do.
    pub role: Role,
    /// What its requests that change something must carry.
    pub csrf: String,
    last_used: Instant,
}

/// Every open session, by id.
#[derive(Default)]
pub struct Sessions {
    open: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Opens a session for `role`; returns its id (the cookie's value) and the session.
    pub fn open(&self, role: Role) -> (String, Session) {
        let id = Alphanumeric.sample_string(&mut rand::rng(), 43);
        let session = Session {
            role,
            csrf: Alphanumeric.sample_string(&mut rand::rng(), 43),
            last_used: Instant::now(),
        };
        let mut open = self.lock();
        open.retain(|_, s| s.last_used.elapsed() < IDLE);
        if open.len() >= MAX_SESSIONS {
            if let Some(oldest) = open
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| k.clone())
            {
                open.remove(&oldest);
            }
        }
        open.insert(id.clone(), session.clone());
        (id, session)
    }

    /// The session `id` names, when it is open (and marks it used).
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut open = self.lock();
        let s = open.get_mut(id)?;
        if s.last_used.elapsed() >= IDLE {
            open.remove(id);
            return None;
        }
        s.last_used = Instant::now();
        Some(s.clone())
    }

    /// Ends the session `id`.
    pub fn close(&self, id: &str) {
        self.lock().remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        match self.open.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// The session id in a request's `Cookie` headers, if any.
pub fn cookie_of(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_id_only_and_closes() {
        let sessions = Sessions::default();
        let (id, s) = sessions.open(Role::ReadOnly);
        assert_eq!(sessions.get(&id).map(|s| s.role), Some(Role::ReadOnly));
        assert_ne!(s.csrf, id);
        assert!(sessions.get("other").is_none());
        sessions.close(&id);
        assert!(sessions.get(&id).is_none());
    }

    #[test]
    fn the_cookie_is_read_among_others() {
        let mut h = axum::http::HeaderMap::new();
        h.insert(
            axum::http::header::COOKIE,
            "a=1; bulkhead_session=xyz; b=2".parse().expect("header"),
        );
        assert_eq!(cookie_of(&h), Some("xyz"));
    }
}
