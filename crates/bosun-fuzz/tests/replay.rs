//! Replays every fuzz corpus and regression input on stable (the short fuzzing runs need
//! nightly): a target that panics on any of them fails this test, naming the file.

use std::path::PathBuf;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

#[test]
fn every_corpus_and_regression_input_replays_cleanly() {
    let mut replayed = 0;
    for (name, target) in bosun_fuzz::TARGETS {
        let mut inputs = 0;
        for kind in ["corpus", "regressions"] {
            let dir = fuzz_dir().join(kind).join(name);
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
            files.sort();
            for file in files {
                let data = std::fs::read(&file).expect("readable input");
                let outcome = std::panic::catch_unwind(|| target(&data));
                assert!(outcome.is_ok(), "fuzz target {name} failed on {}", file.display());
                inputs += 1;
            }
        }
        assert!(inputs > 0, "fuzz/corpus/{name} has no inputs");
        replayed += inputs;
    }
    eprintln!("replayed {replayed} fuzz inputs");
}
