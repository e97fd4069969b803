//! A client's text frame as the server parses it, with the fast scanner checked against
//! serde_json on every input.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        rdv::fuzzing::scanner_agrees_with_serde_json(text);
        rdv::fuzzing::inbound_frame(text);
    }
});
