//! Fuzz target `manifest`: see `sigil_runtime::fuzzing::manifest`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sigil_runtime::fuzzing::manifest(data));
