//! Fuzz target: every pixel inside a box or zone is covered (see `bystander::fuzz::geometry`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bystander::fuzz::geometry(data));
