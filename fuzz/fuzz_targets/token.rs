#![no_main]
//! See `bulkhead_fuzzing::token`: what it feeds the code and what must hold.
libfuzzer_sys::fuzz_target!(|data: &[u8]| bulkhead_fuzzing::token(data));
