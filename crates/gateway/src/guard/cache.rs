//! The guard's verdicts, cached so that a statement is parsed once, not once per execution.
//!
//! Two levels. By exact text, for every verdict. And by *shape*: the tokens PostgreSQL's own
//! scanner finds, with the values of constants left out (their kinds kept) and comments
//! dropped, so `... WHERE aid = 17` and `... WHERE aid = 42` share one entry. Two texts of
//! one shape parse into the same tree but for the constants' values, and no rule's verdict
//! depends on a constant's value except a context statement's (see the guard's invariant),
//! so only verdicts without context statements are kept by shape, and refusals never are.
//! Statement offsets differ between texts of one shape: the entry keeps them as token
//! positions and they are mapped back onto each text's tokens.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pg_query::protobuf::{ScanToken, Token};

use super::{inspect_uncached, BeginOptions, Checked, Refusal, TxEffect};

/// Entries kept per level at most; a full level is emptied (simple, and bounded).
const ENTRIES: usize = 10_000;
/// Longer texts are not cached (they are rarely repeated and would hold memory).
const MAX_TEXT: usize = 4096;

/// A verdict kept by shape: statement starts as "just after token k" (None: the text's start).
struct ShapeEntry {
    checked: Checked,
    starts: Vec<Option<usize>>,
}

#[derive(Default)]
struct Caches {
    exact: HashMap<String, Result<Checked, Refusal>>,
    shapes: HashMap<String, Arc<ShapeEntry>>,
}

static CACHES: Mutex<Option<Caches>> = Mutex::new(None);

fn with<R>(f: impl FnOnce(&mut Caches) -> R) -> Option<R> {
    let mut guard = CACHES.lock().ok()?;
    Some(f(guard.get_or_insert_with(Caches::default)))
}

fn insert<V>(map: &mut HashMap<String, V>, key: String, value: V) {
    if map.len() >= ENTRIES {
        map.clear();
    }
    map.insert(key, value);
}

/// The guard's verdict on `sql`, from a cache when it can be.
pub(super) fn inspect(sql: &str) -> Result<Checked, Refusal> {
    if sql.len() > MAX_TEXT {
        return inspect_uncached(sql);
    }
    // Most statements are in the quick lexer's subset: their shape without the scanner.
    if let Some(quick) = super::quick::quick_shape(sql) {
        if let Some(Some(entry)) = with(|c| c.shapes.get(&quick.key).cloned()) {
            if let Some(checked) = rebase(&entry, &quick.ends) {
                return Ok(checked);
            }
        }
    }
    if let Some(Some(hit)) = with(|c| c.exact.get(sql).cloned()) {
        return hit;
    }
    let Ok(tokens) = scan(sql) else {
        // The parser will say what is wrong.
        return remember_exact(sql, inspect_uncached(sql));
    };
    let key = shape_key(sql, &tokens);
    if let Some(Some(entry)) = with(|c| c.shapes.get(&key).cloned()) {
        let ends: Vec<usize> = tokens
            .iter()
            .filter(|t| !is_comment(t.token))
            .filter_map(|t| usize::try_from(t.end).ok())
            .collect();
        if let Some(checked) = rebase(&entry, &ends) {
            return Ok(checked);
        }
    }
    let verdict = inspect_uncached(sql);
    if let Ok(checked) = &verdict {
        if let Some(entry) = shape_entry(sql, checked, &tokens) {
            with(|c| insert(&mut c.shapes, key, Arc::new(entry)));
            return verdict;
        }
    }
    remember_exact(sql, verdict)
}

fn remember_exact(sql: &str, verdict: Result<Checked, Refusal>) -> Result<Checked, Refusal> {
    with(|c| insert(&mut c.exact, sql.to_string(), verdict.clone()));
    verdict
}

/// PostgreSQL's scanner's tokens of `sql`. A text of white space alone has none, and is
/// answered here: libpg_query returns a null token array for it, which the crate turns into
/// a slice unsafely (a debug build aborts on it).
pub(super) fn scan(sql: &str) -> Result<Vec<ScanToken>, pg_query::Error> {
    if sql
        .bytes()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c'))
    {
        return Ok(Vec::new());
    }
    pg_query::scan_tokens(sql)
}

/// True for a constant's token: its value is left out of the shape.
fn is_constant(token: i32) -> bool {
    [
        Token::Fconst,
        Token::Sconst,
        Token::Usconst,
        Token::Bconst,
        Token::Xconst,
        Token::Iconst,
    ]
    .iter()
    .any(|t| *t as i32 == token)
}

fn is_comment(token: i32) -> bool {
    token == Token::SqlComment as i32 || token == Token::CComment as i32
}

/// Appends `n` in decimal without allocating.
pub(super) fn push_number(key: &mut String, n: i32) {
    use std::fmt::Write;
    let _ = write!(key, "{n}");
}

/// The shape of a text: its tokens separated by NUL (which no SQL text holds), constants as
/// their kind only, comments left out.
pub(super) fn shape_key(sql: &str, tokens: &[ScanToken]) -> String {
    let mut key = String::with_capacity(sql.len() + tokens.len());
    for t in tokens {
        if is_comment(t.token) {
            continue;
        }
        if is_constant(t.token) {
            key.push_str("\0#");
            push_number(&mut key, t.token);
        } else {
            key.push('\0');
            let text = usize::try_from(t.start)
                .ok()
                .zip(usize::try_from(t.end).ok())
                .and_then(|(a, b)| sql.get(a..b))
                .unwrap_or("\u{1}");
            key.push_str(text);
        }
    }
    key
}

/// True when whether `sql` parses at all depends on a constant's value, which a shape does
/// not keep: a Unicode-escape string or identifier (`U&'\0041'`: a bad escape is a syntax
/// error), `UESCAPE 'c'` (a quote or white space is refused), or an escape string (`E'\xff'`:
/// a byte sequence invalid in the encoding is refused by the scanner). Found by the guard's
/// fuzz target: a valid statement's verdict was reused for an unparsable one of its shape.
fn parse_depends_on_values(sql: &str, tokens: &[ScanToken]) -> bool {
    tokens.iter().any(|t| {
        t.token == Token::Usconst as i32
            || t.token == Token::Uident as i32
            || t.token == Token::Uescape as i32
            || (t.token == Token::Sconst as i32
                && usize::try_from(t.start)
                    .ok()
                    .and_then(|a| sql.get(a..a + 1))
                    .is_some_and(|c| c.eq_ignore_ascii_case("e")))
    })
}

/// A verdict that may be kept by shape, with its statement starts as token positions; None
/// when it depends on a constant's value (or its starts do not fall after a token).
fn shape_entry(sql: &str, checked: &Checked, tokens: &[ScanToken]) -> Option<ShapeEntry> {
    let token_free = !checked.by_value
        && checked.effects.iter().all(|e| match e {
            TxEffect::None | TxEffect::Commit | TxEffect::Rollback | TxEffect::RollbackTo => true,
            TxEffect::Begin(options) => *options == BeginOptions::default(),
            TxEffect::Context(_) | TxEffect::Session(_) => false,
        });
    if !token_free {
        return None;
    }
    if parse_depends_on_values(sql, tokens) {
        return None;
    }
    let mut starts = Vec::with_capacity(checked.starts.len());
    for &s in &checked.starts {
        if s == 0 {
            starts.push(None);
            continue;
        }
        let end = i32::try_from(s).ok()?;
        let k = tokens
            .iter()
            .filter(|t| !is_comment(t.token))
            .position(|t| t.end == end)?;
        starts.push(Some(k));
    }
    Some(ShapeEntry {
        checked: checked.clone(),
        starts,
    })
}

/// A shape's verdict with the statement starts of this text, whose tokens (comments left
/// out) end at `ends`.
fn rebase(entry: &ShapeEntry, ends: &[usize]) -> Option<Checked> {
    let mut checked = entry.checked.clone();
    for (slot, start) in checked.starts.iter_mut().zip(&entry.starts) {
        *slot = match *start {
            None => 0,
            Some(k) => *ends.get(k)?,
        };
    }
    Some(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_of_one_shape_share_a_verdict_with_their_own_offsets() {
        let a = "BEGIN; SELECT * FROM t WHERE id = 1 AND name = 'x'";
        let b = "BEGIN; SELECT * FROM t WHERE id = 123456 /* hi */ AND name = 'a much longer one'";
        assert_eq!(inspect(a), inspect_uncached(a));
        assert_eq!(inspect(b), inspect_uncached(b), "served by shape");
        let ta = scan(a).expect("scan");
        let tb = scan(b).expect("scan");
        assert_eq!(shape_key(a, &ta), shape_key(b, &tb));
    }

    #[test]
    fn empty_and_blank_texts_are_judged_without_crashing() {
        for sql in ["", " ", "\n\t ", "\x0b\x0c"] {
            assert_eq!(inspect(sql), inspect_uncached(sql), "{sql:?}");
            assert_eq!(scan(sql).expect("scan"), Vec::new());
        }
        assert!(!scan("-- just a comment").expect("scan").is_empty());
    }

    #[test]
    fn constants_of_other_kinds_or_other_tokens_are_other_shapes() {
        let key = |sql: &str| shape_key(sql, &scan(sql).expect("scan"));
        assert_ne!(key("SELECT 1"), key("SELECT '1'"));
        assert_ne!(key("SELECT 1"), key("SELECT 1.5"));
        assert_ne!(key("COPY t TO STDOUT"), key("COPY t TO '/tmp/x'"));
        assert_ne!(key("SELECT a FROM t"), key("SELECT b FROM t"));
        // A string that hides a statement is one constant token, not a statement.
        assert_ne!(key("SELECT 'x'; SET ROLE y"), key("SELECT 'x; SET ROLE y'"));
    }

    #[test]
    fn context_statements_and_refusals_are_judged_on_their_own_text() {
        let a = "SET LOCAL bulkhead.tenant = 'acme'";
        let b = "SET LOCAL bulkhead.tenant = 'other'";
        assert_eq!(inspect(a), inspect_uncached(a));
        assert_eq!(inspect(b), inspect_uncached(b));
        assert_ne!(inspect(a), inspect(b));
        for sql in [
            "COPY t TO '/tmp/a'",
            "COPY t TO '/tmp/b'",
            "SELEC 1",
            "SELECT 'unterminated",
        ] {
            assert!(inspect(sql).is_err(), "{sql}");
            assert_eq!(inspect(sql), inspect_uncached(sql), "{sql}");
        }
    }
}
