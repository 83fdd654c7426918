//! Fuzz target `xfcc_dn`: see `sigil_runtime::fuzzing::xfcc_dn`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sigil_runtime::fuzzing::xfcc_dn(data));
