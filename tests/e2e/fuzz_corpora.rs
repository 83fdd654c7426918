//! Every fuzz target's committed corpus (`fuzz/corpus/<target>/`), replayed
//! through the same entry points the cargo-fuzz targets call
//! (`sigil_runtime::fuzzing`): an input that once crashed a parser stays a
//! regression test.

use crate::support::workspace_root;

#[test]
fn every_fuzz_corpus_replays_without_a_panic() {
    let root = workspace_root().join("fuzz/corpus");
    for (target, entry) in sigil_runtime::fuzzing::TARGETS {
        let dir = root.join(target);
        let inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        assert!(!inputs.is_empty(), "{} has no inputs", dir.display());
        for input in inputs {
            let bytes = std::fs::read(&input).unwrap();
            let outcome = std::panic::catch_unwind(|| entry(&bytes));
            assert!(outcome.is_ok(), "{target}: {} panicked", input.display());
        }
    }
}
