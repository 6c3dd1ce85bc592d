//! Fuzz target: bystander's zones parser (see `bystander::fuzz::zones`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bystander::fuzz::zones(data));
