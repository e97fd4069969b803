//! Key files and buddy lists: JWK, JWK Sets, NDJSON, PEM (PKCS#8, PKCS#1, SEC1, SPKI).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        rdv::fuzzing::key_text(text);
    }
});
