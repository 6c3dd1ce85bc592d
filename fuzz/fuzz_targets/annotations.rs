//! Fuzz target: bystander's annotations parser (see `bystander::fuzz::annotations`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bystander::fuzz::annotations(data));
