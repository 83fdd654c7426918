//! Fuzz target `pem`: see `sigil_runtime::fuzzing::pem`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sigil_runtime::fuzzing::pem(data));
