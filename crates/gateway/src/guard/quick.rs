//! A quick way to the shape of common statements, without calling PostgreSQL's scanner.
//!
//! It knows a small subset of SQL's lexical rules: plain identifiers and keywords, integers,
//! plain quoted strings, `$n` parameters, single-character punctuation and `::`. For a text
//! made only of those it returns exactly the shape key (and token ends) PostgreSQL's scanner
//! would give (see `cache.rs`); for anything else — comments, dollar quotes, escapes,
//! quoted identifiers, multi-character operators, decimals, non-ASCII — it gives up and the
//! caller asks PostgreSQL's scanner. Giving up is always safe; a wrong key never is, so
//! every rule here errs towards giving up, and a differential test checks it against the
//! real scanner.

use pg_query::protobuf::Token;

/// The shape key of `sql` and where each token ends, when `sql` is in the subset.
pub(super) struct QuickShape {
    pub key: String,
    pub ends: Vec<usize>,
}

/// Characters that PostgreSQL's scanner may join with a neighbouring operator character
/// into one operator (or a comment).
fn is_op_char(c: u8) -> bool {
    matches!(
        c,
        b'~' | b'!'
            | b'@'
            | b'#'
            | b'^'
            | b'&'
            | b'|'
            | b'`'
            | b'?'
            | b'+'
            | b'-'
            | b'*'
            | b'/'
            | b'%'
            | b'<'
            | b'>'
            | b'='
    )
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_ident_cont(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn push_constant(key: &mut String, token: Token) {
    key.push_str("\0#");
    super::cache::push_number(key, token as i32);
}

/// The shape of `sql`, or None when it uses anything outside the subset.
pub(super) fn quick_shape(sql: &str) -> Option<QuickShape> {
    let b = sql.as_bytes();
    let mut key = String::with_capacity(sql.len() + 16);
    let mut ends = Vec::with_capacity(sql.len() / 3 + 4);
    let mut i = 0;
    let at = |j: usize| b.get(j).copied();
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            _ if is_ident_start(c) => {
                let start = i;
                while at(i).is_some_and(is_ident_cont) {
                    i += 1;
                }
                // `$` continues an identifier; a quote or `&` right after one makes E'',
                // B'', X'', N'', U&'' and U&"" literals.
                if at(i).is_some_and(|n| {
                    n == b'$' || n == b'\'' || n == b'&' || n == b'"' || !n.is_ascii()
                }) {
                    return None;
                }
                key.push('\0');
                key.push_str(&sql[start..i]);
            }
            b'0'..=b'9' => {
                let start = i;
                while at(i).is_some_and(|n| n.is_ascii_digit()) {
                    i += 1;
                }
                // Decimals, exponents, trailing junk, 0x/0o/0b and `_` separators: not here.
                if at(i)
                    .is_some_and(|n| n == b'.' || is_ident_cont(n) || n == b'$' || !n.is_ascii())
                {
                    return None;
                }
                // An integer too large for int4 is scanned as a numeric constant.
                let fits = sql[start..i].parse::<i32>().is_ok();
                push_constant(&mut key, if fits { Token::Iconst } else { Token::Fconst });
            }
            b'\'' => {
                i += 1;
                loop {
                    match at(i)? {
                        b'\\' => return None,
                        b'\'' if at(i + 1) == Some(b'\'') => i += 2,
                        b'\'' => break,
                        _ => i += 1,
                    }
                }
                i += 1;
                // 'a' <newline> 'b' is one constant; give up on any string that a quote
                // follows after white space.
                let mut j = i;
                while at(j).is_some_and(|n| matches!(n, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c')) {
                    j += 1;
                }
                if at(j) == Some(b'\'') {
                    return None;
                }
                push_constant(&mut key, Token::Sconst);
            }
            b'$' => {
                let start = i;
                i += 1;
                if !at(i).is_some_and(|n| n.is_ascii_digit()) {
                    return None;
                }
                while at(i).is_some_and(|n| n.is_ascii_digit()) {
                    i += 1;
                }
                if at(i)
                    .is_some_and(|n| is_ident_cont(n) || n == b'$' || n == b'.' || !n.is_ascii())
                    || sql[start + 1..i].parse::<i32>().is_err()
                {
                    return None;
                }
                key.push('\0');
                key.push_str(&sql[start..i]);
            }
            b':' => {
                let start = i;
                i += 1;
                if at(i) == Some(b':') {
                    i += 1;
                }
                if at(i).is_some_and(|n| n == b':' || n == b'=' || is_op_char(n)) {
                    return None;
                }
                key.push('\0');
                key.push_str(&sql[start..i]);
            }
            b'.' => {
                i += 1;
                if at(i).is_some_and(|n| n == b'.' || n.is_ascii_digit()) {
                    return None;
                }
                key.push_str("\0.");
            }
            b',' | b'(' | b')' | b'[' | b']' | b';' => {
                i += 1;
                key.push('\0');
                key.push(c as char);
            }
            b'=' | b'<' | b'>' | b'+' | b'-' | b'*' | b'/' | b'%' => {
                i += 1;
                // Two operator characters may make one operator, or a comment.
                if at(i).is_some_and(is_op_char) {
                    return None;
                }
                key.push('\0');
                key.push(c as char);
            }
            _ => return None,
        }
        ends.push(i);
    }
    Some(QuickShape { key, ends })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The shape and token ends PostgreSQL's own scanner gives.
    fn real(sql: &str) -> Option<(String, Vec<usize>)> {
        let tokens = super::super::cache::scan(sql).ok()?;
        let key = super::super::cache::shape_key(sql, &tokens);
        let ends = tokens
            .iter()
            .filter(|t| t.token != Token::SqlComment as i32 && t.token != Token::CComment as i32)
            .map(|t| t.end as usize)
            .collect();
        Some((key, ends))
    }

    fn agrees(sql: &str) -> Result<(), String> {
        if let Some(q) = quick_shape(sql) {
            match real(sql) {
                Some((key, ends)) if key == q.key && ends == q.ends => Ok(()),
                other => Err(format!(
                    "{sql:?}: quick {:?} {:?}, scanner {other:?}",
                    q.key, q.ends
                )),
            }
        } else {
            Ok(())
        }
    }

    #[test]
    fn common_statements_are_shaped_like_the_scanner_shapes_them() {
        for sql in [
            "SELECT abalance FROM pgbench_accounts WHERE aid = 12345;",
            "UPDATE pgbench_accounts SET abalance = abalance + -4711 WHERE aid = 77;",
            "INSERT INTO t (a, b) VALUES ($1, 'it''s'), (2, '')",
            "SELECT a::text, b[1:2], c.d FROM t WHERE x > 2147483647 AND y < 2147483648",
            "select * from t where id = $1 and name = $2",
            "BEGIN; SELECT 1; COMMIT",
            "SELECT 'multi\nline'",
        ] {
            assert!(quick_shape(sql).is_some(), "{sql} is in the subset");
            agrees(sql).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn anything_unusual_is_left_to_the_scanner() {
        for sql in [
            "SELECT 1 -- comment",
            "SELECT /* c */ 1",
            "SELECT E'a\\'b'",
            "SELECT 'a\\'",
            "SELECT $$x$$",
            "SELECT \"Quoted\"",
            "SELECT 1.5",
            "SELECT 1e3",
            "SELECT 0x1F",
            "SELECT 1_000",
            "SELECT a <= b",
            "SELECT a != b",
            "SELECT 'a'\n'b'",
            "SELECT U&'x'",
            "SELECT x$1",
            "SELECT 'é'",
            "SELECT é",
            "SELECT a := 1",
        ] {
            // Some of these could be shaped; the point is only that what is shaped agrees.
            agrees(sql).unwrap_or_else(|e| panic!("{e}"));
        }
        assert!(quick_shape("SELECT 1 -- x").is_none());
        assert!(quick_shape("SELECT E'x'").is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn whatever_is_shaped_agrees_with_the_scanner(
            parts in proptest::collection::vec(prop_oneof![
                Just("SELECT"), Just("a"), Just("E"), Just("U&"), Just("x_1"), Just("1"),
                Just("2147483648"), Just("0"), Just("'"), Just("''"), Just("'s'"), Just("\\"),
                Just("$"), Just("$1"), Just("$$"), Just(" "), Just("\n"), Just("\t"), Just("-"),
                Just("--"), Just("/"), Just("*"), Just("="), Just("<"), Just(">"), Just("!"),
                Just(":"), Just("::"), Just("."), Just(","), Just(";"), Just("("), Just(")"),
                Just("["), Just("]"), Just("\""), Just("#"), Just("%"), Just("+"), Just("&"),
                Just("|"), Just("~"), Just("?"), Just("@"), Just("^"), Just("`"), Just("é"),
                Just("e"), Just("_"),
            ], 0..24)
        ) {
            let sql: String = parts.concat();
            prop_assert!(agrees(&sql).is_ok(), "{}", agrees(&sql).unwrap_err());
        }
    }
}
