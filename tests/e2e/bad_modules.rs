//! Hand-written modules that are not valid Sigil workers, each refused at
//! load with its own named error (used by the bad-manifest suite and by the
//! reload tests).

use std::path::Path;

/// A module with the ABI exports (it answers nothing useful); `replace`
/// swaps a piece of its text.
fn worker(replace: &[(&str, &str)]) -> Vec<u8> {
    let mut wat = r#"(module
        (memory (export "memory") 1)
        (func (export "sigil_abi_version") (result i32) i32.const 1)
        (func (export "sigil_alloc") (param i32) (result i32) i32.const 1024)
        (func (export "sigil_handle") (param i32 i32) (result i64) i64.const 0)
        ;; extra
    )"#
    .to_string();
    for (from, to) in replace {
        assert!(wat.contains(from), "{from}");
        wat = wat.replace(from, to);
    }
    wat::parse_str(&wat).unwrap()
}

/// `(file name, module bytes, the error sigil prints)` for each bad module.
pub fn cases() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    vec![
        (
            "abi-version-99.wasm",
            worker(&[("i32.const 1)", "i32.const 99)")]),
            "abi-version-99.wasm: the export `sigil_abi_version` returned 99; this runtime speaks ABI version 1",
        ),
        (
            "handle-wrong-signature.wasm",
            worker(&[("(param i32 i32) (result i64)", "(param i32) (result i64)")]),
            "handle-wrong-signature.wasm: the export `sigil_handle` has type (i32) -> i64; expected (i32, i32) -> i64",
        ),
        (
            "handle-global.wasm",
            worker(&[(
                r#"(func (export "sigil_handle") (param i32 i32) (result i64) i64.const 0)"#,
                r#"(global (export "sigil_handle") i64 (i64.const 0))"#,
            )]),
            "handle-global.wasm: the export `sigil_handle` is a global; expected a function (i32, i32) -> i64",
        ),
        (
            "start-traps.wasm",
            worker(&[(";; extra", "(func $s unreachable) (start $s)")]),
            "start-traps.wasm: instantiating it (its start function) at load failed: wasm trap: wasm `unreachable` instruction executed",
        ),
        (
            "data-out-of-bounds.wasm",
            worker(&[(";; extra", r#"(data (i32.const 65530) "0123456789")"#)]),
            "data-out-of-bounds.wasm: instantiating it (its data and element segments) at load failed: wasm trap: out of bounds memory access",
        ),
    ]
}

/// A module defining `n` functions. The last one does not validate, so a
/// module refused for its function count shows it was never compiled.
pub fn many_functions(n: usize, last_invalid: bool) -> Vec<u8> {
    let mut wat = String::from("(module");
    for _ in 0..n.saturating_sub(1) {
        wat.push_str(" (func (param i32) (result i32) local.get 0)");
    }
    wat.push_str(if last_invalid {
        " (func (result i32)))"
    } else {
        " (func))"
    });
    wat::parse_str(&wat).unwrap()
}

/// Write every bad module, and `too-many-functions.wasm` (101 functions), into `dir`.
pub fn write_all(dir: &Path) {
    for (name, bytes, _) in cases() {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    std::fs::write(
        dir.join("too-many-functions.wasm"),
        many_functions(101, true),
    )
    .unwrap();
}

/// A module that speaks the ABI (so it loads) but whose `sigil_handle`
/// returns -1: no location of an output at all.
pub fn bad_output_location() -> Vec<u8> {
    worker(&[("i64.const 0)", "i64.const -1)")])
}
