//! The `publicKey` of a `register`, as the server validates it.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        rdv::fuzzing::public_jwk(text);
    }
});
