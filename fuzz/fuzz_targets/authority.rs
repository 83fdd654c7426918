//! Fuzz target `authority`: see `sigil_runtime::fuzzing::authority`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sigil_runtime::fuzzing::authority(data));
