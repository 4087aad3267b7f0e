#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| xdpvs_fuzz::config::run(data));
