//! A WASI command, not a `wasi:http/proxy` component: `sigil check` must
//! refuse it, naming what it exports.

fn main() {
    println!("hello from a command");
}
