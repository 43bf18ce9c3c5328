//! The fuzz targets on every `cargo test`: each over its checked-in corpus (`fuzz/corpus/`,
//! where each crash a fuzzer found is kept as a regression input) and over random inputs.

use std::path::Path;

use proptest::prelude::*;

fn corpus(target: &str, body: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("entry").path();
        let data = std::fs::read(&path).expect("read");
        let result = std::panic::catch_unwind(|| body(&data));
        assert!(result.is_ok(), "{} fails its target", path.display());
        n += 1;
    }
    assert!(n > 0, "{} is empty", dir.display());
}

#[test]
fn the_wire_corpus_passes() {
    corpus("wire", bulkhead_fuzzing::wire);
}

#[test]
fn the_guard_corpus_passes() {
    corpus("guard", bulkhead_fuzzing::guard);
}

#[test]
fn the_token_corpus_passes() {
    corpus("token", bulkhead_fuzzing::token);
}

#[test]
fn the_archive_corpus_passes() {
    corpus("archive", bulkhead_fuzzing::archive);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn random_bytes_pass_the_wire_target(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        bulkhead_fuzzing::wire(&data);
    }

    #[test]
    fn random_sql_like_text_passes_the_guard_target(
        parts in proptest::collection::vec(prop_oneof![
            Just("SELECT "), Just("SET "), Just("LOCAL "), Just("role "), Just("bulkhead.tenant "),
            Just("= "), Just("'x' "), Just("1 "), Just("; "), Just("BEGIN "), Just("COMMIT "),
            Just("FROM "), Just("t "), Just("pg_read_file("), Just(") "), Just("$$"), Just("E'\\\\' "),
            Just("/* "), Just("*/ "), Just("-- \n"), Just("COPY "), Just("TO "), Just("PROGRAM "),
            Just("DO "), Just("WITH "), Just("( "), Just("set_config("), Just(", "), Just("\"q\" "),
            Just("U&'\\0041' "), Just("RESET "), Just("ALL "), Just("SESSION "), Just("AUTHORIZATION "),
        ], 0..24)
    ) {
        bulkhead_fuzzing::guard(parts.concat().as_bytes());
    }

    #[test]
    fn random_tokens_pass_the_token_target(
        parts in proptest::collection::vec("[A-Za-z0-9_=-]{0,40}", 0..5)
    ) {
        bulkhead_fuzzing::token(parts.join(".").as_bytes());
    }

    #[test]
    fn random_bytes_pass_the_archive_target(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
        bulkhead_fuzzing::archive(&data);
    }
}

/// The guard's fuzz target found these: after a valid statement was cached by its shape, an
/// unparsable one of the same shape was accepted. Each pair: the valid one first.
#[test]
fn a_constant_that_decides_whether_text_parses_is_never_cached_by_shape() {
    for (valid, invalid) in [
        (
            "SELECT U&'\\0041' UESCAPE '!'",
            "SELECT U&'\\0041' UESCAPE ' '",
        ),
        ("SELECT U&'\\0041'", "SELECT U&'\\00zz'"),
        ("SELECT U&\"\\0041\" FROM t", "SELECT U&\"\\00zz\" FROM t"),
        ("SELECT E'\\x41'", "SELECT E'\\xff'"),
    ] {
        assert!(bulkhead_gateway::guard::inspect(valid).is_ok(), "{valid}");
        assert!(
            bulkhead_gateway::guard::inspect(invalid).is_err(),
            "{invalid} was accepted after {valid}"
        );
        bulkhead_fuzzing::guard(invalid.as_bytes());
    }
}
