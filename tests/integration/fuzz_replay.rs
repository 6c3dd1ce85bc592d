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

/// The geometry property (every pixel inside a box or zone is covered) on generated cases: a
/// seeded generator feeds the fuzz entry point byte strings of every length up to 200, so the
/// property is exercised in every test run, not only when someone fuzzes.
#[test]
fn every_pixel_inside_a_box_or_zone_is_covered_on_generated_cases() {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
    };
    for case in 0..20_000 {
        let len = case % 200;
        let data: Vec<u8> = (0..len).map(|_| next()).collect();
        bystander::fuzz::geometry(&data);
    }
}
