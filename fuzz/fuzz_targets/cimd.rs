#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| buzzgate_fuzzing::cimd(data));
