//! What each fuzz target does with its input, and what must hold whatever the input (the
//! oracle; a violation panics, which is what the fuzzer finds). `fuzz/` runs these under
//! libFuzzer (`scripts/fuzz.sh`); `tests/corpus.rs` runs them over the checked-in corpus and
//! over random inputs on every `cargo test`, so that a crash once found stays fixed.
//!
//! - [`wire`]: a client's bytes (startup packet, then frames) and a server's frames: decoding
//!   never panics, never reads past a frame, and a frame's length is honoured.
//! - [`guard`]: any text as SQL: the guard never panics, and its cached verdict (by a
//!   statement's shape) is the verdict of a fresh parse: the cache can never let through what
//!   the parser refuses.
//! - [`token`]: any text as a tenant token for a service with an HS256 secret: checking it
//!   never panics, and nothing unsigned by that secret is accepted.
//! - [`archive`]: any bytes as a backup archive: reading the header and up to 64 frames
//!   never panics, whatever the lengths and tags say.

use bytes::BytesMut;

/// The largest frame the targets accept (like the gateway's `max_message`, smaller).
const MAX_FRAME: usize = 1 << 16;

/// A client's bytes, then the same bytes as server frames.
pub fn wire(data: &[u8]) {
    use bulkhead_wire::{BackendMessage, Frame, FrontendMessage, Startup};
    let mut buf = BytesMut::from(data);
    let before = buf.len();
    if let Ok(Some(_)) = Startup::parse(&mut buf) {
        assert!(buf.len() < before, "a startup packet consumed nothing");
    }
    for as_client in [true, false] {
        let mut buf = BytesMut::from(data);
        loop {
            let before = buf.len();
            match Frame::parse(&mut buf, MAX_FRAME) {
                Ok(Some(frame)) => {
                    // Tag, length and body: exactly what was consumed.
                    assert_eq!(before - buf.len(), frame.body.len() + 5, "frame length");
                    assert!(frame.body.len() <= MAX_FRAME);
                    if as_client {
                        let _ = FrontendMessage::decode(&frame);
                    } else {
                        let _ = BackendMessage::decode(&frame);
                        let _ = bulkhead_wire::data_row_texts(&frame);
                    }
                }
                Ok(None) => {
                    assert_eq!(buf.len(), before, "an incomplete frame consumed bytes");
                    break;
                }
                Err(_) => break,
            }
        }
    }
}

/// Any text as SQL, through the guard with and without its shape cache.
pub fn guard(data: &[u8]) {
    use bulkhead_gateway::guard::{inspect, inspect_uncached};
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    // PostgreSQL's parser has a stack-depth limit of its own; the gateway's clients send
    // queries of at most `max_message` bytes.
    if sql.len() > 16 * 1024 || sql.contains('\0') {
        return;
    }
    let fresh = inspect_uncached(sql);
    let cached = inspect(sql);
    let again = inspect(sql);
    match (&fresh, &cached) {
        (Ok(f), Ok(c)) => {
            assert_eq!(
                f.effects, c.effects,
                "{sql:?}: effects differ with the cache"
            );
            assert_eq!(f.ddl, c.ddl, "{sql:?}: ddl differs with the cache");
            assert_eq!(
                f.copy_in, c.copy_in,
                "{sql:?}: copy_in differs with the cache"
            );
            assert_eq!(f.tenant_free, c.tenant_free, "{sql:?}: tenant_free differs");
            assert_eq!(f.notify, c.notify, "{sql:?}: notify differs with the cache");
            assert_eq!(
                f.settings, c.settings,
                "{sql:?}: settings differ with the cache"
            );
        }
        (Err(f), Err(c)) => {
            assert_eq!(
                f.code, c.code,
                "{sql:?}: refused differently with the cache"
            );
            assert_eq!(f.rule, c.rule, "{sql:?}: another rule with the cache");
        }
        (Ok(_), Err(e)) => panic!("{sql:?}: accepted by a fresh parse, refused cached: {e:?}"),
        (Err(e), Ok(_)) => panic!("{sql:?}: refused by a fresh parse ({e:?}), accepted cached"),
    }
    assert_eq!(
        cached.is_ok(),
        again.is_ok(),
        "{sql:?}: the cache changed its mind"
    );
}

/// The secret the token target's service signs with.
pub const TOKEN_SECRET: &str = "fuzzing-secret-of-at-least-32-bytes!!";

/// Any text as a tenant token of a service whose tokens are HS256 with [`TOKEN_SECRET`].
pub fn token(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let auth = bulkhead_directory::ServiceAuth {
        hs256_secret: Some(TOKEN_SECRET.into()),
        ..Default::default()
    };
    if let Ok(t) = bulkhead_gateway::auth::tenant_from_token(&auth, text) {
        // Accepted: then it is three parts and its signature is the secret's.
        let parts: Vec<&str> = text.split('.').collect();
        assert_eq!(
            parts.len(),
            3,
            "accepted a token that is not header.claims.signature: {text:?} -> {t:?}"
        );
        assert!(!parts[2].is_empty(), "accepted an unsigned token: {text:?}");
    }
}

/// Any bytes as a backup archive, read with a data key that never sealed them.
pub fn archive(data: &[u8]) {
    use bulkhead_backup::archive::{read_header, Reader};
    let mut input = data;
    let Ok((_header, hash)) = read_header(&mut input) else {
        return;
    };
    let key = bulkhead_backup::keys::DataKey::from_bytes([7u8; 32]);
    let mut reader = Reader::new(input, &key, hash);
    for _ in 0..64 {
        if reader.next_frame().is_err() {
            return;
        }
    }
}
