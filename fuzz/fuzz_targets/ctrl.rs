#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| xdpvs_fuzz::ctrl::run(data));
