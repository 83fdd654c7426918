//! Fuzz target `host_calls`: see `sigil_runtime::fuzzing::host_calls`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sigil_runtime::fuzzing::host_calls(data));
