#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bosun_fuzz::policy(data));
