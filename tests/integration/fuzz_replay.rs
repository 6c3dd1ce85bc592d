//! Replays the fuzz corpus (`fuzz/corpus/TARGET`) and every input saved from a fuzzing crash
//! (`fuzz/regressions/TARGET`) through the same entry points the fuzz targets use, so a crash
//! found once stays fixed. Fuzzing itself runs outside CI (`scripts/fuzz`).

use std::path::PathBuf;

#[test]
fn the_fuzz_corpus_and_saved_crashes_replay_without_panicking() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for (target, run) in bystander::fuzz::TARGETS {
        let mut replayed = 0;
        for dir in [
            root.join("corpus").join(target),
            root.join("regressions").join(target),
        ] {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let data = std::fs::read(e.path()).unwrap();
                run(&data);
                replayed += 1;
            }
        }
        assert!(replayed > 0, "no corpus for fuzz target {target}");
    }
}
