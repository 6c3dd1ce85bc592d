//! Fuzz target: bystander's detections parser (see `bystander::fuzz::detections`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bystander::fuzz::detections(data));
