//! An access token (PROTOCOL §13) against keys of every kind, and the same text as a key file.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        rdv::fuzzing::token(text);
    }
});
